"""Every model family deployed on the app. Add a module here when a family's class exists."""
from remote import piano  # noqa: F401
from remote import song  # noqa: F401
from remote import musicgen  # noqa: F401
from remote import midi_llm  # noqa: F401
from remote import web  # noqa: F401
