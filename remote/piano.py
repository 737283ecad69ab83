"""PianoModel: the PercePiano perceptual model (Flax AST) on a GPU, checkpoint from the weights Volume.

Checkpoints live at WEIGHTS_DIR/piano/<name> (what `muse models upload piano PATH` writes); `model`
is that name, or an absolute path. No memory snapshot: the checkpoint on the Volume may be replaced
under the same name, and a snapshot would keep serving the old weights.
"""

from pathlib import Path

import modal

from muse_cli.ops.catalog import gpu_for
from remote import common
from remote.app import app
from remote.images import WEIGHTS_DIR, image
from remote.plan import service

PIANO_DIR = f"{WEIGHTS_DIR}/piano"

DEFAULT_MODEL = "percepiano-ast"

piano_image = image("piano", "jax[cuda12]==0.10.2", "flax==0.12.8", "safetensors==0.8.0")


@app.cls(**service("PianoModel", image=piano_image, image_name="piano", gpu=gpu_for("piano", DEFAULT_MODEL),
                   timeout=600, scaledown_window=120, retries=1))
class PianoModel(common.Served):
    FAMILY = "piano"
    model: str = modal.parameter(default=DEFAULT_MODEL)
    trust: bool = modal.parameter(default=False)

    @modal.enter()
    def load(self) -> None:
        from muse_cli.engines.piano import PianoEngine
        from muse_cli.errors import MuseError

        self.engine = PianoEngine(self.model, trust=self.trust, dirs=[Path(PIANO_DIR)])
        try:
            self.engine.load()
        except MuseError:
            # The engine keeps the error; every request answers with it in protocol instead of a
            # container crash loop.
            pass

    def health_info(self) -> dict:
        import jax

        return {"jax": jax.__version__, "checkpoint_loaded": self.engine.loaded}
