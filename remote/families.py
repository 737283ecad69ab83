"""Every model family deployed on the app. Add a module here when a family's class exists."""
from remote import piano  # noqa: F401
