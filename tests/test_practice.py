"""`muse analyze --score`: practice feedback on small pieces made here, one fault class at a time.

MIDI takes have exact expectations (the notes are what the test wrote); audio takes go through
the built-in synth and the bundled basic-pitch model, and get looser bounds.
"""

from __future__ import annotations

import io
import json
import subprocess
import sys

import numpy as np
import pretty_midi
import pytest

from muse_cli.pipelines.analysis import analyze_source
from muse_cli.contracts import AnalyzeRequest, AudioInput
from muse_cli.errors import InputError
from muse_cli.music.score import ARTIFACT_KINDS, Evidence, PlayedNote, align_transcribed, read_score
from muse_cli.pipelines.practice import score_section

BPM = 120.0
BEAT = 60.0 / BPM
# Two hands, 8 bars of 4/4 in F major: a right-hand line in eighths and left-hand quarters.
RIGHT = [65, 67, 69, 70, 72, 70, 69, 67]
LEFT = [41, 45, 48, 45]


def score_notes(bars: int = 8) -> list[tuple[float, float, int, int]]:
    """(start, end, pitch, velocity) in seconds at the marked tempo; velocities rise bar by bar."""
    notes = []
    for bar in range(bars):
        base = bar * 4 * BEAT
        vel = 50 + 8 * bar
        for k, pitch in enumerate(RIGHT):
            notes.append((base + k * BEAT / 2, base + (k + 1) * BEAT / 2 - 0.02, pitch, vel))
        for k, pitch in enumerate(LEFT):
            notes.append((base + k * BEAT, base + (k + 1) * BEAT - 0.02, pitch, vel - 10))
    return sorted(notes)


def midi(notes, *, tempo: float = BPM, time_signature=(4, 4), key: int | None = 5) -> bytes:
    pm = pretty_midi.PrettyMIDI(initial_tempo=tempo)
    pm.time_signature_changes.append(pretty_midi.TimeSignature(*time_signature, 0.0))
    if key is not None:
        pm.key_signature_changes.append(pretty_midi.KeySignature(key, 0.0))
    piano = pretty_midi.Instrument(0)
    for start, end, pitch, vel in notes:
        piano.notes.append(pretty_midi.Note(velocity=int(vel), pitch=int(pitch), start=float(start), end=float(end)))
    pm.instruments.append(piano)
    buffer = io.BytesIO()
    pm.write(buffer)
    return buffer.getvalue()


def feedback(take_notes, score=None, **request):
    score = score if score is not None else midi(score_notes())
    req = AnalyzeRequest(score=AudioInput(name="piece.mid", data=score), **request)
    return analyze_source(midi(take_notes, key=None), req, name="take.mid").report.score


def bar_of(section, number):
    return next(b for b in section.bars if b.bar == number)


def at(notes, bar: int, index_in_bar: int, hand_pitches=RIGHT):
    """Index in `notes` of the index_in_bar-th right-hand note of a bar (1-based bar)."""
    start = (bar - 1) * 4 * BEAT + index_in_bar * BEAT / 2
    return next(i for i, n in enumerate(notes) if abs(n[0] - start) < 1e-6 and n[2] in hand_pitches)


# ----------------------------------------------------------------------------------- MIDI takes


def test_a_faithful_take_is_all_right_on_time_and_at_the_marked_tempo():
    s = feedback(score_notes())
    assert (s.counts.score_notes, s.counts.played, s.counts.wrong_pitch, s.counts.missed, s.counts.extra) == (96, 96, 0, 0, 0)
    assert s.accuracy.value == 100
    assert abs(s.timing.median_deviation.value) < 1 and s.timing.late_notes.value == 0
    assert s.tempo.marked.value == 120 and s.tempo.performed.value == pytest.approx(120, abs=0.5)
    assert s.tempo.ratio.reading == "as marked" and s.timing.passages == []
    assert all(b.summary == f"bar {b.bar}: as written" for b in s.bars) and len(s.bars) == 8
    assert s.source.time_signature == "4/4" and s.source.pickup is False and s.source.key_signature == -1


def test_a_wrong_note_is_named_in_its_bar_spelled_in_the_key():
    take = score_notes()
    i = at(take, 5, 3)  # bar 5, fourth eighth: Bb4 (70) in F major
    take[i] = (take[i][0], take[i][1], 71, take[i][3])
    s = feedback(take)
    assert (s.counts.played, s.counts.wrong_pitch, s.counts.missed, s.counts.extra) == (95, 1, 0, 0)
    assert bar_of(s, 5).wrong_pitch == ["B4 for Bb4"]
    assert bar_of(s, 5).summary == "bar 5: 1 wrong note (B4 for Bb4)"
    assert s.accuracy.value == pytest.approx(100 * 95 / 96, abs=0.05)


def test_a_missed_note_and_an_extra_note():
    take = score_notes()
    del take[at(take, 3, 2)]  # A4 in bar 3
    take.append((7 * 4 * BEAT + 0.25 * BEAT, 7 * 4 * BEAT + 0.5 * BEAT, 84, 60))  # a stray C6 in bar 8
    s = feedback(sorted(take))
    assert (s.counts.played, s.counts.wrong_pitch, s.counts.missed, s.counts.extra) == (95, 0, 1, 1)
    assert bar_of(s, 3).missed == ["A4"] and bar_of(s, 3).summary == "bar 3: 1 missed note (A4)"
    assert bar_of(s, 8).extra == ["C6"] and bar_of(s, 8).summary == "bar 8: 1 extra note (C6)"
    assert s.accuracy.value == pytest.approx(100 * 95 / 97, abs=0.05)


def test_late_notes_are_measured_against_their_neighbours():
    take = score_notes()
    for index, late in ((2, 0.070), (5, 0.090)):
        i = at(take, 4, index)
        take[i] = (take[i][0] + late, take[i][1] + late, take[i][2], take[i][3])
    s = feedback(take)
    assert s.counts.played == 96
    row = bar_of(s, 4)
    assert len(row.late) == 2 and row.late[0] == pytest.approx(70, abs=6) and row.late[1] == pytest.approx(90, abs=6)
    assert row.summary.startswith("bar 4: 2 notes late by ") and row.summary.endswith(" ms")
    assert all(not b.late and not b.early for b in s.bars if b.bar != 4)
    assert s.timing.late_notes.value == 2


def test_a_slower_take_reads_as_slower_than_marked_with_every_note_right():
    take = [(a / 0.9, b / 0.9, p, v) for a, b, p, v in score_notes()]
    s = feedback(take)
    assert s.counts.played == 96 and s.timing.late_notes.value == 0
    assert s.tempo.performed.value == pytest.approx(108, abs=1)
    assert s.tempo.ratio.value == pytest.approx(90, abs=1) and s.tempo.ratio.reading == "10 % slower than marked"
    assert all(p.bpm == pytest.approx(108, abs=2) for p in s.tempo.curve)
    assert s.tempo.curve[0].bar == 1 and s.tempo.curve[0].beat == 1 and len(s.tempo.curve) == 8 * 4


def test_a_rushed_passage_is_found_by_its_bars():
    def warp(t: float) -> float:  # bars 5-6 (8 s to 12 s of score time) played 25 % faster
        return t if t <= 8 else (8 + (t - 8) * 0.8 if t <= 12 else 8 + 4 * 0.8 + (t - 12))

    take = [(warp(a), warp(b), p, v) for a, b, p, v in score_notes()]
    s = feedback(take)
    assert s.counts.played == 96
    rushing = [p for p in s.timing.passages if p.kind == "rushing"]
    assert len(rushing) == 1 and 4 <= rushing[0].first_bar <= 5 and 6 <= rushing[0].last_bar <= 7
    assert rushing[0].tempo_change > 6
    assert bar_of(s, 5).tempo_bpm > bar_of(s, 2).tempo_bpm * 1.15


def test_dynamics_and_articulation_against_what_is_written():
    louder_shorter = [(a, a + (b - a) * 0.5, p, min(127, v + 20)) for a, b, p, v in score_notes()]
    s = feedback(louder_shorter)
    assert s.dynamics.velocity_offset.value == pytest.approx(20, abs=0.5)
    assert s.dynamics.velocity_offset.reading == "louder than written"
    assert s.dynamics.shape_correlation.value > 0.95
    assert s.articulation.duration_ratio.value == pytest.approx(0.5, abs=0.02)
    assert s.articulation.duration_ratio.reading == "more detached (shorter) than written"
    flat = [(a, b, p, 64) for a, b, p, _ in score_notes()]
    s = feedback(score_notes(), score=midi(flat))  # the score writes one velocity: no dynamics to compare
    assert s.dynamics.velocity_offset.value is None and "no dynamics" in s.dynamics.velocity_offset.reading


def test_a_pickup_bar_is_bar_0_and_bars_follow_the_time_signature():
    beat = 0.5
    # 3/4 with a one-beat upbeat: the file starts two beats into its first bar.
    notes = [(2 * beat, 3 * beat - 0.02, 67, 70)]
    for k in range(12):  # bars 1-4, one note a beat
        start = 3 * beat + k * beat
        notes.append((start, start + beat - 0.02, [72, 71, 69][k % 3], 70))
    score = midi(notes, time_signature=(3, 4), key=0)
    take = list(notes)
    take[4] = (take[4][0], take[4][1], 70, 70)  # the first beat of bar 2: Bb4 for C5
    s = feedback(take, score=score)
    assert s.source.pickup is True and s.source.time_signature == "3/4"
    assert [b.bar for b in s.bars][:3] == [0, 1, 2]
    assert bar_of(s, 2).wrong_pitch == ["Bb4 for C5"]
    assert bar_of(s, 0).notes == 1 and bar_of(s, 1).notes == 3


def test_per_note_results_with_notes():
    take = score_notes()
    del take[at(take, 2, 0)]
    s = feedback(take, notes=True)
    assert len(s.notes) == 96 and s.extra_notes == []
    missed = [n for n in s.notes if n.status == "missed"]
    assert len(missed) == 1 and (missed[0].bar, missed[0].beat, missed[0].name) == (2, 1.0, "F4")
    assert all(n.deviation_ms is not None and abs(n.deviation_ms) < 1 for n in s.notes if n.status == "played")


def test_musicxml_score_with_pickup_and_spelling(tmp_path):
    music21 = pytest.importorskip("music21")
    from music21 import key, meter, note, stream, tempo

    part = stream.Part()
    pickup = stream.Measure(number=0)
    pickup.append([meter.TimeSignature("3/4"), key.KeySignature(-2), tempo.MetronomeMark(number=90)])
    pickup.append(note.Note("B-4", quarterLength=1))
    pickup.padAsAnacrusis()
    part.append(pickup)
    for number, names in ((1, ["E-5", "D5", "C5"]), (2, ["B-4", "A4", "G4"])):
        m = stream.Measure(number=number)
        for name in names:
            m.append(note.Note(name, quarterLength=1))
        part.append(m)
    path = tmp_path / "piece.musicxml"
    stream.Score([part]).write("musicxml", fp=str(path))
    score = read_score(path.read_bytes(), "piece.musicxml")
    assert score.kind == "musicxml" and score.tempo == 90 and score.key_fifths == -2
    assert [(n.bar, n.beat, n.name) for n in score.notes][:3] == [(0, 3.0, "Bb4"), (1, 1.0, "Eb5"), (1, 2.0, "D5")]
    spq = 60 / 90
    assert score.notes[1].onset == pytest.approx(spq)
    take = [(n.onset, n.offset, n.pitch, 70) for n in score.notes]
    take[1] = (take[1][0], take[1][1], 64, 70)  # E4 for Eb5: too far to be a slip -> missed + extra
    take[5] = (take[5][0], take[5][1], 68, 70)  # Ab4 for A4 in bar 2
    s = analyze_source(midi(take, tempo=90, key=None), AnalyzeRequest(score=AudioInput(name="piece.musicxml", data=path.read_bytes())),
                       name="take.mid").report.score
    assert bar_of(s, 2).wrong_pitch == ["Ab4 for A4"]
    assert bar_of(s, 1).missed == ["Eb5"] and bar_of(s, 1).extra == ["E4"]
    assert s.source.pickup is True and s.tempo.marked.value == 90


def test_bad_scores_are_refused_before_any_model_runs():
    take = midi(score_notes(), key=None)
    for data, name, words in ((b"", "s.mid", "is empty"), (b"hello", "s.txt", "neither MIDI nor MusicXML"),
                              (b"MThd\x00", "s.mid", "not a readable MIDI"), (b"PK\x03\x04junk", "s.mxl", ".mxl")):
        with pytest.raises(InputError, match=words):
            analyze_source(take, AnalyzeRequest(score=AudioInput(name=name, data=data)), name="take.mid")


# ----------------------------------------------------------------------------------------- CLI


def test_cli_writes_the_score_section_table_and_practice_plot(run_cli, tmp_path):
    (tmp_path / "piece.mid").write_bytes(midi(score_notes()))
    take = score_notes()
    i = at(take, 5, 3)
    take[i] = (take[i][0], take[i][1], 71, take[i][3])
    (tmp_path / "take.mid").write_bytes(midi(take, key=None))
    code, out, err = run_cli("analyze", "take.mid", "--score", "piece.mid", "--plot")
    assert code == 0, err
    assert [p.split("/")[-1] for p in out.split()] == ["take.analysis.json", "take.analysis.png", "take.score.png"]
    report = json.loads((tmp_path / "take.analysis.json").read_text())
    assert report["schema_version"] == "1.1"
    assert report["score"]["counts"]["wrong_pitch"] == 1
    assert report["muse"]["request"]["score"]["name"] == "piece.mid"
    assert "sha256" in report["muse"]["request"]["score"]["data"]  # a digest, never the file
    assert "bar 5: 1 wrong note (B4 for Bb4)" in err and "accuracy" in err
    assert (tmp_path / "take.score.png").read_bytes()[:4] == b"\x89PNG"


def test_cli_bad_score_is_one_line_exit_2(run_cli, tmp_path):
    (tmp_path / "take.mid").write_bytes(midi(score_notes(), key=None))
    code, _, err = run_cli("analyze", "take.mid", "--score", "absent.mid")
    assert code == 2 and "--score" in err and "no such file" in err
    (tmp_path / "notes.txt").write_text("not a score")
    code, _, err = run_cli("analyze", "take.mid", "--score", "notes.txt")
    assert code == 2 and "neither MIDI nor MusicXML" in err
    assert not (tmp_path / "take.analysis.json").exists()


def test_cli_score_needs_transcription_of_audio(run_cli, tmp_path):
    (tmp_path / "piece.mid").write_bytes(midi(score_notes()))
    (tmp_path / "take.wav").write_bytes(b"RIFF")
    code, _, err = run_cli("analyze", "take.wav", "--score", "piece.mid", "--no-transcribe")
    assert code == 2 and "transcription" in err


def test_batch_line_names_a_score(run_cli, tmp_path):
    (tmp_path / "piece.mid").write_bytes(midi(score_notes()))
    take = score_notes()
    del take[at(take, 3, 2)]
    (tmp_path / "take.mid").write_bytes(midi(take, key=None))
    (tmp_path / "jobs.jsonl").write_text(json.dumps({"kind": "analyze", "input": "take.mid", "score": "piece.mid"}) + "\n")
    code, out, err = run_cli("batch", "jobs.jsonl", "--out-dir", "out", "-q")
    assert code == 0, err
    report = json.loads((tmp_path / "out" / "0001-take.analysis.json").read_text())
    assert report["score"]["counts"]["missed"] == 1 and report["score"]["bars"][2]["missed"] == ["A4"]


def test_help_stays_light_with_the_score_option():
    code = ("import sys, muse_cli.cli as c\n"
            "heavy = [m for m in ('music21', 'librosa', 'matplotlib', 'partitura') if m in sys.modules]\n"
            "print(','.join(heavy))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == ""


# ------------------------------------------------ transcribed takes: rules on posteriors made here
#
# align_transcribed (muse_cli/music/score.py) reads the transcription model's posteriors again
# where the score expects notes, and sets transcription artifacts aside. Here the posteriors are
# written by the test: every transcribed note gets an onset peak (its strength) and a frame
# activation (its velocity), so each rule's expectation is exact.

FPS = 22050 / 256


def played_of(notes, velocity: int = 80) -> list[PlayedNote]:
    return [PlayedNote(a, b, p, velocity) for a, b, p, _ in notes]


def evidence(played, strength: float = 0.9, peaks=()) -> Evidence:
    """Posteriors for transcribed notes (onset peak `strength` or a per-note dict entry), plus
    extra onset peaks (time, pitch, value) that no transcribed note has."""
    strength_of = strength if isinstance(strength, dict) else {}
    frames = int((max(p.offset for p in played) + 2) * FPS)
    onset = np.zeros((frames, 88), np.float32)
    frame = np.zeros((frames, 88), np.float32)
    for j, p in enumerate(played):
        f, key = int(round(p.onset * FPS)), p.pitch - 21
        frame[f : int(round(p.offset * FPS)), key] = p.velocity / 127
        onset[f, key] = strength_of.get(j, 0.9) if strength_of else strength
    for t, pitch, value in peaks:
        onset[int(round(t * FPS)), pitch - 21] = value
    return Evidence(onset, frame, FPS, 21)


def index_in(score, note) -> int:
    """The score's index of a (start, end, pitch, velocity) note."""
    return next(i for i, n in enumerate(score.notes) if abs(n.onset - note[0]) < 1e-6 and n.pitch == note[2])


def test_a_score_note_the_decoder_dropped_is_found_in_its_onset_evidence():
    score = read_score(midi(score_notes()), "piece.mid")
    notes = score_notes()
    gone = at(notes, 3, 2)  # A4 in bar 3: struck (an onset peak 20 ms late), but no transcribed note
    i = index_in(score, notes[gone])
    take = played_of(notes[:gone] + notes[gone + 1 :])
    _, al, counts = align_transcribed(score, take, evidence(take, peaks=[(notes[gone][0] + 0.02, 69, 0.4)]))
    assert counts["rescued"] == 0 and al.score_status[i] == "missed"  # below the decoder's onset threshold
    got, al, counts = align_transcribed(score, take, evidence(take, peaks=[(notes[gone][0] + 0.02, 69, 0.65)]))
    assert counts["rescued"] == 1 and al.score_status.count("played") == 96 and al.played_status.count("extra") == 0
    assert got[al.score_match[i]].pitch == 69 and al.deviation[i] == pytest.approx(0.02, abs=0.012)
    without = align_transcribed(score, take)[1]  # no posteriors: nothing to look at again
    assert without.score_status[i] == "missed"


def test_a_rescue_stands_above_the_take_s_own_spurious_onsets():
    score = read_score(midi(score_notes()), "piece.mid")
    notes = score_notes()
    gone = at(notes, 3, 2)
    take = played_of(notes[:gone] + notes[gone + 1 :])
    noise = [(0.3 + 0.45 * k, 90 + k % 5, 0.7) for k in range(30)]  # spurious peaks of 0.7 on silent keys
    i = index_in(score, notes[gone])
    for value, rescued in ((0.65, False), (0.8, True)):
        _, al, counts = align_transcribed(score, take, evidence(take, peaks=[(notes[gone][0], 69, value), *noise]))
        assert counts["rescued"] == int(rescued) and al.score_status[i] == ("played" if rescued else "missed")


def test_a_slip_the_decoder_dropped_is_read_as_a_wrong_pitch():
    score = read_score(midi(score_notes()), "piece.mid")
    notes = score_notes()
    gone = at(notes, 5, 3)  # Bb4 in bar 5, and B4 struck for it (its onset peak only)
    take = played_of(notes[:gone] + notes[gone + 1 :])
    i = index_in(score, notes[gone])
    got, al, counts = align_transcribed(score, take, evidence(take, peaks=[(notes[gone][0], 71, 0.75)]))
    assert al.score_status[i] == "wrong" and got[al.score_match[i]].pitch == 71 and counts["rescued"] == 1
    section = score_section(score, got, al)
    assert bar_of(section, 5).wrong_pitch == ["B4 for Bb4"]


def test_a_rescued_repeat_ends_the_note_the_decoder_merged_it_into():
    beat = 0.5
    written = [(k * beat, (k + 1) * beat, 67, 80) for k in range(8)]  # G4 repeated, legato
    score = read_score(midi(written, key=0), "piece.mid")
    merged = [PlayedNote(0.0, 2 * beat, 67, 80), *played_of(written[2:])]  # the decoder made beats 1-2 one note
    got, al, counts = align_transcribed(score, merged, evidence(merged, peaks=[(beat, 67, 0.7)]))
    assert counts["rescued"] == 1 and al.score_status == ["played"] * 8
    assert got[0].offset == pytest.approx(beat, abs=0.012) and got[1].onset == pytest.approx(beat, abs=0.012)


def test_transcription_artifacts_are_not_extra_notes():
    score = read_score(midi(score_notes()), "piece.mid")
    notes = score_notes()
    take = played_of(notes)
    c5 = next(p for p in take if p.pitch == 72)  # bar 1 at 1.0 s: C5 in the right hand, C3 in the left
    artifacts = [
        PlayedNote(c5.onset, c5.onset + 0.2, 84, 40),  # C6: C5's octave partial, fainter
        PlayedNote(c5.onset + 0.01, c5.onset + 0.2, 53, 40),  # F3: a twelfth below C5, fainter
        PlayedNote(c5.onset - 0.1, c5.onset, 72, 40),  # C5 again, just before the note: its onset's early bump
    ]
    stray = PlayedNote(2.25, 2.45, 100, 80)  # E7 in bar 2: no note explains it
    played = sorted([*take, *artifacts, stray], key=lambda p: (p.onset, p.pitch))
    strengths = {j: (0.6 if p in artifacts else 0.9) for j, p in enumerate(played)}
    got, al, counts = align_transcribed(score, played, evidence(played, strengths))
    assert (counts["overtone"], counts["undertone"], counts["retrigger"]) == (1, 1, 1)
    assert al.played_status.count("extra") == 1 and got[al.played_status.index("extra")].pitch == 100
    assert al.score_status.count("played") == 96
    # A stray key struck with the hand's usual force is an extra note, partial or not.
    loud = PlayedNote(c5.onset, c5.onset + 0.2, 84, 90)
    played = sorted([*take, loud], key=lambda p: (p.onset, p.pitch))
    _, al, counts = align_transcribed(score, played, evidence(played))
    assert al.played_status.count("extra") == 1 and sum(counts[k] for k in ARTIFACT_KINDS) == 0


def test_a_partial_heard_late_is_a_key_only_with_a_strong_onset():
    score = read_score(midi(score_notes()), "piece.mid")
    take = played_of(score_notes())
    f2 = next(p for p in take if p.pitch == 41)  # a quarter-note F2, sounding 0.48 s
    late = PlayedNote(f2.onset + 0.3, f2.onset + 0.45, 53, 40)  # F3, its octave, 300 ms into it
    played = sorted([*take, late], key=lambda p: (p.onset, p.pitch))
    j = played.index(late)
    for value, status in ((0.55, "overtone"), (0.8, "extra")):
        strengths = {k: (value if k == j else 0.9) for k in range(len(played))}
        _, al, _ = align_transcribed(score, played, evidence(played, strengths))
        assert al.played_status[j] == status


def test_the_numpy_dtw_finds_librosa_s_path():
    dtw = pytest.importorskip("librosa.sequence").dtw
    from muse_cli.music.score import _dtw_path

    rng = np.random.default_rng(5)
    for shape in ((1, 7), (9, 1), (40, 55), (300, 240)):
        cost = rng.random(shape)
        _, path = dtw(C=cost, backtrack=True)
        assert np.array_equal(_dtw_path(cost), path[::-1])
    cost = np.ones((30, 30))  # ties everywhere: librosa prefers the diagonal
    assert np.array_equal(_dtw_path(cost), dtw(C=cost, backtrack=True)[1][::-1])


# ---------------------------------------------------------------------------------------- audio


@pytest.mark.slow
def test_audio_take_through_the_transcription():
    from muse_cli.music.transcribe import unavailable_reason

    if unavailable_reason():
        pytest.skip(f"transcription unavailable: {unavailable_reason()}")
    from muse_cli.contracts import RenderRequest
    from muse_cli.music.render import render_to_bytes

    notes = [n for n in score_notes(6) if n[2] in RIGHT]  # one hand: what the transcription hears best
    take = list(notes)
    wrong = at(take, 3, 4)
    take[wrong] = (take[wrong][0], take[wrong][1], 74, take[wrong][3])  # D5 for C5
    del take[at(take, 5, 2)]  # A4 missed
    pm = pretty_midi.PrettyMIDI(io.BytesIO(midi([(a + 0.3, b + 0.3, p, 90) for a, b, p, _ in take], key=None)))
    wav, _ = render_to_bytes(pm, RenderRequest(sample_rate=22050, stereo=False))
    req = AnalyzeRequest(score=AudioInput(name="piece.mid", data=midi(notes)))
    s = analyze_source(wav, req, name="take.wav").report.score
    assert s.counts.score_notes == 48 and s.counts.played >= 42
    assert s.counts.extra <= 3
    assert "D5 for C5" in bar_of(s, 3).wrong_pitch or "C5" in bar_of(s, 3).missed
    assert "A4" in bar_of(s, 5).missed
    assert abs(s.timing.median_deviation.value) < 30 and s.tempo.ratio.value == pytest.approx(100, abs=3)
    assert s.dynamics.velocity_offset.value is None  # audio: no absolute level


@pytest.mark.slow
def test_audio_take_with_legato_repeats_and_a_bass_reads_as_played():
    """Repeated keys held to the next strike and a bass an octave or two below: what the decoder
    merges (repeats) and adds (partials) is sorted out against the score."""
    from muse_cli.music.transcribe import unavailable_reason

    if unavailable_reason():
        pytest.skip(f"transcription unavailable: {unavailable_reason()}")
    from muse_cli.contracts import RenderRequest
    from muse_cli.music.render import render_to_bytes

    beat = 0.4
    written = [(k * beat, (k + 1) * beat, [67, 67, 67, 69, 71, 71, 69, 67][k % 8], 80) for k in range(24)]
    written += [(k * beat, (k + 2) * beat, [43, 48, 50][k // 2 % 3], 70) for k in range(0, 24, 2)]
    written.sort()
    pm = pretty_midi.PrettyMIDI(io.BytesIO(midi([(a + 0.3, b + 0.3, p, v) for a, b, p, v in written], key=None)))
    wav, _ = render_to_bytes(pm, RenderRequest(sample_rate=22050, stereo=False))
    analysis = analyze_source(wav, AnalyzeRequest(score=AudioInput(name="piece.mid", data=midi(written, key=0))),
                              name="take.wav")
    s = analysis.report.score
    assert s.counts.score_notes == 36 and s.counts.played >= 34 and s.counts.extra <= 1
    assert analysis.posteriors is None  # kept for the score section only, then let go
    assert all("artifacts" not in w or w.split(":")[1].strip() for w in analysis.report.warnings)


def test_http_analyze_takes_a_score(tmp_path):
    pytest.importorskip("fastapi")
    pytest.importorskip("multipart")
    from fastapi.testclient import TestClient

    from muse_cli.backends.local import LocalBackend
    from muse_cli.http.app import create_app

    client = TestClient(create_app(LocalBackend(), token="test-token-0123456789abcdef", storage_dir=tmp_path), raise_server_exceptions=False)
    auth = {"Authorization": "Bearer test-token-0123456789abcdef"}
    take = score_notes()
    del take[at(take, 3, 2)]
    files = {"file": ("take.mid", midi(take, key=None), "audio/midi"),
             "score": ("piece.mid", midi(score_notes()), "audio/midi")}
    r = client.post("/v1/analyze", files=files, data={"plot": "true"}, headers=auth)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["score"]["counts"]["missed"] == 1 and body["score"]["bars"][2]["summary"] == "bar 3: 1 missed note (A4)"
    assert body["score_plot_base64"] and body["plot_base64"]
    bad = client.post("/v1/analyze", files={"file": files["file"], "score": ("s.txt", b"nope", "text/plain")}, headers=auth)
    assert bad.status_code == 422 and "neither MIDI nor MusicXML" in bad.text
    plain = client.post("/v1/analyze", files={"file": files["file"]}, headers=auth)
    assert plain.status_code == 200 and plain.json()["score"] is None


def test_the_plot_maps_a_last_note_release_past_the_alignment_map():
    """The alignment map ends at the last onset; the last note's release must not collapse onto it."""
    from muse_cli.pipelines.practice_plot import _warp

    to_score = _warp([0.0, 1.0, 2.0], [0.0, 2.0, 4.0])  # the take runs at half the score's speed
    assert to_score(1.5) == 3.0
    assert to_score(3.0) == 6.0 and to_score(-0.5) == -1.0
    assert _warp([1.0], [2.0])(1.5) == 2.5  # a one-point map: unit rate
