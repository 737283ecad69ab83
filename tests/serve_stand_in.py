"""`muse serve` (the real command, its real HTTP stack and storage) with the three song stages
answered by stand-ins, since the song models cannot run here: test_song's Stages for the lyrics
LLM and the cover art, and an ACE-Step stand-in that returns a WAV of the requested length (so a
240 s request is a 46 MB file). The boundary is the backend's per-family `run`, the same one
tests/test_web.py replaces in-process.

    python tests/serve_stand_in.py serve --port 8000 --storage s3://bucket/prefix
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import numpy as np  # noqa: E402

from muse_cli.backends.local import LocalBackend  # noqa: E402
from muse_cli.contracts import AceStepResult  # noqa: E402
from muse_cli.music.audio import encode_audio  # noqa: E402
from muse_cli.progress import null_progress  # noqa: E402

_real_run = LocalBackend.run


def song_of(seconds: float) -> bytes:
    t = np.arange(int(48000 * seconds), dtype=np.float32) / 48000
    tone = (0.2 * np.sin(2 * np.pi * 220 * t)).astype(np.float32)
    return encode_audio(np.stack([tone, tone]), 48000, "wav")


def run(self, family, request, *, model=None, options=None, progress=null_progress):
    if family in ("lyrics", "cover"):
        from test_song import Stages

        return Stages()(family, request, progress=progress)
    if family == "acestep":
        return AceStepResult(engine="acestep", model="ACE-Step/ACE-Step-v1-3.5B (stand-in)", seed=request.seed,
                             device="cpu", audio=song_of(request.duration), format="wav", channels=2,
                             duration=request.duration, timings={"acestep": 0.0})
    return _real_run(self, family, request, model=model, options=options, progress=progress)


LocalBackend.run = run

if __name__ == "__main__":
    from muse_cli.cli import main

    main(sys.argv[1:])
