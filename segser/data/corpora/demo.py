"""A synthetic corpus in the IEMOCAP release layout, so the whole pipeline runs without IEMOCAP.

Emotion is carried by prosody only -- pitch level and range, syllable rate, loudness, spectral
tilt -- with per-speaker voices and per-clip spread, so classes overlap: learnable, not trivial.
Each clip is a band-limited sawtooth (harmonics of a time-varying f0) through formant-like
resonances, gated into syllables and phrases, plus breath and background noise.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import tempfile
import time
from collections import Counter
from collections.abc import Mapping
from dataclasses import astuple
from pathlib import Path

import numpy as np
import soundfile as sf

from segser.data.corpora.clips import BadClipPolicy, Clip
from segser.data.corpora.demo_voice import (
    SAMPLE_RATE_HZ,
    Prosody,
    Utterance,
    Voice,
    seeded_rng,
    synthesize,
)
from segser.data.corpora.iemocap import read_iemocap
from segser.errors import SegserError

_VERSION = 1  # bump when the audio or layout changes, so old corpora are rewritten
_MARKER = "segser_demo.json"
_SESSIONS = 5
_MIN_SECONDS, _MAX_SECONDS = 1.0, 8.0


_CLASS_PROSODY = {
    "angry": Prosody(4.0, 6.0, 5.4, 7.0, 0.0),
    "happy": Prosody(3.5, 7.0, 4.8, 3.0, -2.0),
    "sad": Prosody(-2.5, 2.0, 3.1, -6.0, -7.0),
    "neutral": Prosody(0.0, 3.0, 4.0, 0.0, -4.0),
}
_CLIP_SPREAD = Prosody(1.6, 1.5, 0.6, 2.5, 1.5)  # per-clip standard deviations
_CODES = {"angry": ("ang",), "happy": ("hap", "exc"), "sad": ("sad",), "neutral": ("neu",)}
_DROPPED_CODES = ("fru", "xxx", "sur", "oth")  # outside the 4-class map; spoken neutrally
_LABEL_CYCLE = ("neutral", "happy", "angry", "sad", "neutral", "happy", "angry", "sad")
_LABEL_CYCLE += ("neutral", "happy")  # IEMOCAP-like shares: 30% neutral, 30% happy, 20%, 20%
_RATER_WORDS = dict(
    zip(
        ("ang", "hap", "exc", "sad", "neu", "fru", "sur", "oth"),
        ("Anger", "Happiness", "Excited", "Sadness", "Neutral", "Frustration", "Surprise", "Other"),
        strict=True,
    )
)
_VAD = {"ang": (1.5, 4.0, 4.0), "hap": (4.0, 3.0, 3.0), "exc": (4.0, 3.5, 3.0)}
_VAD |= {"sad": (2.0, 2.0, 2.0), "neu": (3.0, 2.5, 3.0)}


def _voices(seed: int) -> list[Voice]:
    voices = []
    for session in range(1, _SESSIONS + 1):
        for letter in "FM":
            rng = seeded_rng(seed, 1, len(voices))
            female = letter == "F"
            voices.append(
                Voice(
                    speaker=f"Ses{session:02d}{letter}",
                    base_f0_hz=rng.uniform(180, 235) if female else rng.uniform(95, 135),
                    formant_scale=rng.uniform(1.12, 1.22) if female else rng.uniform(0.95, 1.05),
                    rate_scale=rng.uniform(0.88, 1.12),
                    range_scale=rng.uniform(0.8, 1.2),
                    loudness_db=rng.normal(0.0, 2.0),
                    tilt_db_per_octave=rng.normal(0.0, 1.0),
                    breathiness=rng.uniform(0.02, 0.08),
                )
            )
    return voices


def _plan(num_clips: int, seed: int) -> list[Utterance]:
    """Who says what: labelled clips dealt round-robin over the 10 speakers, plus a few
    utterances with codes the 4-class map drops, as in the real release."""
    rng = seeded_rng(seed, 0)
    voices = _voices(seed)
    num_dropped = max(2, num_clips // 20)
    per_speaker = [list(range(s, num_clips, len(voices))) for s in range(len(voices))]
    labels = [""] * num_clips
    for s, indices in enumerate(per_speaker):
        cycle = [_LABEL_CYCLE[(s + k) % len(_LABEL_CYCLE)] for k in range(len(indices))]
        for i, label in zip(indices, rng.permutation(cycle), strict=True):
            labels[i] = str(label)
    utterances = []
    for i in range(num_clips + num_dropped):
        labelled = i < num_clips
        label = labels[i] if labelled else "neutral"
        codes = _CODES[label] if labelled else (_DROPPED_CODES[(i - num_clips) % 4],)
        mean, spread = astuple(_CLASS_PROSODY[label]), astuple(_CLIP_SPREAD)
        draw = np.array(mean) + rng.normal(size=len(mean)) * np.array(spread)
        seconds = np.clip(np.exp(rng.normal(np.log(3.8), 0.45)), _MIN_SECONDS, _MAX_SECONDS)
        utterances.append(
            Utterance(
                index=i,
                voice=voices[i % len(voices) if labelled else (3 * i) % len(voices)],
                label=label if labelled else None,
                code=str(rng.choice(codes)),
                prosody=Prosody(*draw.tolist()),
                num_samples=round(seconds * SAMPLE_RATE_HZ),
            )
        )
    return utterances


def _dialogs(utterances: list[Utterance], seed: int) -> dict[str, list[tuple[str, Utterance]]]:
    """Deal each session's turns into dialogs led by F and M in turn (impro and script names),
    numbering each speaker's turns as the release does (Ses01F_impro01_M000)."""
    rng = seeded_rng(seed, 3)
    dialogs = {}
    for session in range(1, _SESSIONS + 1):
        prefix = f"Ses{session:02d}"
        turns = [u for u in utterances if u.voice.speaker.startswith(prefix)]
        count = max(1, round(len(turns) / 12)) if turns else 0
        order = rng.permutation(len(turns))
        for j in range(count):
            lead, number = "FM"[j % 2], j // 4 + 1
            kind = f"impro{number:02d}" if j % 4 < 2 else f"script{number:02d}_1"
            name = f"{prefix}{lead}_{kind}"
            counters = {"F": 0, "M": 0}
            named = []
            for k in order[j::count]:
                letter = turns[k].voice.speaker[-1]
                named.append((f"{name}_{letter}{counters[letter]:03d}", turns[k]))
                counters[letter] += 1
            dialogs[name] = named
    return dialogs


def _evaluation_text(rng: np.random.Generator, turns: list[tuple[str, Utterance]]) -> str:
    """An EmoEvaluation file: header, then per turn a summary line, rater lines and a blank."""
    lines = ["% [START_TIME - END_TIME] TURN_NAME EMOTION [V, A, D]", ""]
    clock = rng.uniform(2.0, 8.0)
    for utterance_id, turn in turns:
        end = clock + turn.num_samples / SAMPLE_RATE_HZ
        vad = np.clip(np.array(_VAD.get(turn.code, (3.0, 3.0, 3.0))) + rng.normal(0, 0.3, 3), 1, 5)
        v, a, d = vad.tolist()
        lines.append(
            f"[{clock:.4f} - {end:.4f}]\t{utterance_id}\t{turn.code}\t[{v:.4f}, {a:.4f}, {d:.4f}]"
        )
        if turn.code == "xxx":  # no majority among the raters
            words = rng.choice(["Anger", "Frustration", "Neutral", "Sadness"], 3, replace=False)
        else:
            words = [_RATER_WORDS[turn.code]] * 3
        for rater, word in zip(("C-E1", "C-E3", "C-F1"), words, strict=True):
            lines.append(f"{rater}:\t{word};\t()")
        for rater in ("A-E1", "A-F1"):
            lines.append(f"{rater}:\tval {round(v)}; act {round(a)}; dom  {round(d)};\t()")
        lines.append("")
        clock = end + rng.uniform(0.3, 3.0)
    return "\n".join(lines)


def _write_layout(root: Path, utterances: list[Utterance], seed: int) -> None:
    rng = seeded_rng(seed, 4)
    for name, turns in _dialogs(utterances, seed).items():
        session_dir = root / f"Session{int(name[3:5])}"
        evaluation_dir = session_dir / "dialog" / "EmoEvaluation"
        wav_dir = session_dir / "sentences" / "wav" / name
        evaluation_dir.mkdir(parents=True, exist_ok=True)
        wav_dir.mkdir(parents=True)
        text = _evaluation_text(rng, turns)
        (evaluation_dir / f"{name}.txt").write_text(text, encoding="utf-8")
        for utterance_id, turn in turns:
            samples = synthesize(turn, seed)
            sf.write(wav_dir / f"{utterance_id}.wav", samples, SAMPLE_RATE_HZ, subtype="PCM_16")


def _parameters(num_clips: int, seed: int) -> dict[str, int]:
    return {"num_clips": num_clips, "seed": seed, "version": _VERSION}


def _is_complete(out_dir: Path, parameters: dict[str, int]) -> bool:
    """The marker is written last, so its presence with equal parameters means complete."""
    try:
        return json.loads((out_dir / _MARKER).read_text(encoding="utf-8")) == parameters
    except (OSError, ValueError):
        return False


def _move_into_place(staging: Path, out_dir: Path, parameters: dict[str, int]) -> None:
    """Rename the finished corpus onto `out_dir`, replacing a demo corpus of other parameters."""
    old = None
    if out_dir.exists():
        if _is_complete(out_dir, parameters):  # a concurrent writer finished first
            return
        old = out_dir.with_name(f".{out_dir.name}.old-{os.getpid()}")
        out_dir.rename(old)
    try:
        staging.rename(out_dir)
    except OSError:
        if not _is_complete(out_dir, parameters):
            raise
    finally:
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)


def write_demo_corpus(out_dir: str | Path, num_clips: int = 400, seed: int = 0) -> Path:
    """Write the demo corpus (IEMOCAP layout) at `out_dir` and return it, for read_iemocap.

    Idempotent and atomic: an existing complete corpus with the same parameters is returned at
    once; otherwise it is built in a temporary sibling folder and renamed into place.
    """
    if num_clips < 1:
        raise SegserError(f"num_clips={num_clips}: the demo corpus needs at least 1 clip")
    out_dir = Path(out_dir).expanduser().resolve()
    parameters = _parameters(num_clips, seed)
    if _is_complete(out_dir, parameters):
        return out_dir
    foreign = out_dir.exists() and not (out_dir / _MARKER).exists()
    if foreign and (not out_dir.is_dir() or any(out_dir.iterdir())):
        raise SegserError(
            f"{out_dir}: exists and is not a segser demo corpus. "
            "Choose a new or empty folder for the demo corpus"
        )
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.partial-", dir=out_dir.parent))
    try:
        _write_layout(staging, _plan(num_clips, seed), seed)
        marker = json.dumps(parameters, indent=2, sort_keys=True) + "\n"
        (staging / _MARKER).write_text(marker, encoding="utf-8")
        staging.chmod(0o755)  # mkdtemp makes it private
        _move_into_place(staging, out_dir, parameters)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return out_dir


def read_demo_corpus(
    root: str | Path,
    label_map: Mapping[str, str],
    num_clips: int = 400,
    seed: int = 0,
    on_bad_clip: BadClipPolicy = "fail",
    keep_unmapped: bool = False,
) -> list[Clip]:
    """The demo corpus' clip table, writing the corpus first if it is not there yet."""
    root = write_demo_corpus(root, num_clips, seed)
    return read_iemocap(root, label_map, None, on_bad_clip, keep_unmapped)


def main(argv: list[str] | None = None) -> None:
    """CLI: `python -m segser.data.corpora.demo OUT_DIR [--clips N] [--seed S]`."""
    parser = argparse.ArgumentParser(
        prog="python -m segser.data.corpora.demo",
        description="Write the synthetic demo corpus in the IEMOCAP release layout.",
    )
    parser.add_argument("out_dir", type=Path, help="folder to write; point dataset.root at it")
    parser.add_argument("--clips", type=int, default=400, help="clips in the 4 classes")
    parser.add_argument("--seed", type=int, default=0, help="same seed, same bytes")
    args = parser.parse_args(argv)
    started = time.perf_counter()
    found = _is_complete(args.out_dir.expanduser().resolve(), _parameters(args.clips, args.seed))
    try:
        root = write_demo_corpus(args.out_dir, args.clips, args.seed)
    except SegserError as err:
        raise SystemExit(f"error: {err}") from None
    plan = _plan(args.clips, args.seed)
    labels = Counter(u.label for u in plan if u.label is not None)
    dropped = Counter(u.code for u in plan if u.label is None)
    seconds = time.perf_counter() - started
    print(
        f"{'found' if found else 'wrote'} demo corpus {root} in {seconds:.1f} s: "
        f"{args.clips} clips ({', '.join(f'{k} {v}' for k, v in sorted(labels.items()))}) "
        f"from {len({u.voice.speaker for u in plan})} speakers in {_SESSIONS} sessions, plus "
        f"{sum(dropped.values())} turns coded {'/'.join(sorted(dropped))} "
        "that the 4-class map drops"
    )


if __name__ == "__main__":
    main()
