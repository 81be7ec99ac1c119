"""Read corpora whose file names carry the labels (EmoDB, RAVDESS, CREMA-D) into a clip table.

Rule: every `*.wav` under the root (any depth, so the release's own folders `wav/`,
`Actor_NN/`, `AudioWAV/` or any flat copy work) is one clip; its stem must match the corpus's
file-name pattern, which names the speaker and the emotion code. Codes in the label map become
the paper's classes, the rest are dropped. Session = speaker (each actor recorded alone), so
leave-one-session-out is leave-one-speaker-out. What was read is checked against the release's
published counts: a partial copy warns, naming what is missing, and never fails.
"""

from __future__ import annotations

import argparse
import logging
import re
import sys
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from segser.data.corpora.clips import BadClipPolicy, BadClips, Clip, label_counts, read_clip
from segser.errors import BadClipError, SegserError

logger = logging.getLogger("segser")


@dataclass(frozen=True)
class NamedFilesCorpus:
    """One corpus's file-name convention and its release's published counts."""

    name: str
    pattern: str  # full match on the file stem; groups `speaker` and `emotion` are required
    convention: str  # the convention in words, for the bad-name error
    keep: Mapping[str, str] = field(default_factory=dict)  # group -> value a kept file must have
    published_total: int = 0
    published_emotions: Mapping[str, int] = field(default_factory=dict)  # emotion code -> files
    published_speakers: Sequence[str] = ()
    files_per_speaker: int | None = None  # every speaker's count, unless listed in the exceptions
    speaker_exceptions: Mapping[str, int] = field(default_factory=dict)


EMODB = NamedFilesCorpus(
    name="emodb",
    pattern=r"(?P<speaker>\d{2})(?P<text>[a-z]\d{2})(?P<emotion>[WLEAFTN])(?P<version>[a-z])",
    convention="SSTTTEV.wav: speaker 2 digits, text code a01..b10, emotion W/L/E/A/F/T/N, "
    "version letter (e.g. 03a01Wa.wav)",
    published_total=535,
    published_emotions={"W": 127, "F": 71, "T": 62, "N": 79},
    published_speakers=("03", "08", "09", "10", "11", "12", "13", "14", "15", "16"),
)
RAVDESS = NamedFilesCorpus(
    name="ravdess",
    pattern=r"(?P<modality>0[1-3])-(?P<channel>0[12])-(?P<emotion>0[1-8])-(?P<intensity>0[12])"
    r"-(?P<statement>0[12])-(?P<repetition>0[12])-(?P<speaker>\d{2})",
    convention="MM-VV-EE-II-SS-RR-AA.wav: modality, vocal channel, emotion 01-08, intensity, "
    "statement, repetition, actor (e.g. 03-01-05-01-01-01-12.wav)",
    keep={"modality": "03", "channel": "01"},  # audio-only speech; song files are dropped
    published_total=1440,
    published_emotions={"01": 96, **{f"0{code}": 192 for code in range(2, 9)}},
    published_speakers=tuple(f"{actor:02d}" for actor in range(1, 25)),
    files_per_speaker=60,
)
CREMAD = NamedFilesCorpus(
    name="cremad",
    pattern=r"(?P<speaker>1\d{3})_(?P<sentence>[A-Z]{3})_(?P<emotion>ANG|DIS|FEA|HAP|NEU|SAD)"
    r"_(?P<level>LO|MD|HI|XX)",
    convention="AAAA_SSS_EEE_LL.wav: actor 1001-1091, sentence, emotion ANG/DIS/FEA/HAP/NEU/SAD, "
    "level LO/MD/HI/XX (e.g. 1001_DFA_ANG_XX.wav)",
    published_total=7442,
    published_emotions={
        "ANG": 1271,
        "DIS": 1271,
        "FEA": 1271,
        "HAP": 1271,
        "SAD": 1271,
        "NEU": 1087,
    },
    published_speakers=tuple(str(actor) for actor in range(1001, 1092)),
    files_per_speaker=82,
    speaker_exceptions={"1002": 81, "1076": 81, "1008": 76, "1009": 76, "1019": 76},
)
CORPORA = {corpus.name: corpus for corpus in (EMODB, RAVDESS, CREMAD)}


def _corpus(name: str) -> NamedFilesCorpus:
    if name not in CORPORA:
        raise SegserError(f"unknown corpus {name!r}. Use one of {sorted(CORPORA)}")
    return CORPORA[name]


def parse_file_name(corpus: NamedFilesCorpus, path: Path) -> dict[str, str]:
    """The convention's fields of one file, or a BadClipError naming the convention."""
    match = re.fullmatch(corpus.pattern, path.stem)
    if match is None:
        raise BadClipError(
            path,
            f"file name {path.name!r} breaks the {corpus.name} convention {corpus.convention}",
            "Rename or move the file out of dataset.root, or set data.on_bad_clip=skip",
        )
    return match.groupdict()


def count_check(corpus: NamedFilesCorpus, fields: Sequence[Mapping[str, str]]) -> list[str]:
    """Differences between the files read (all codes) and the published counts; empty if none."""
    lines = []
    emotions = Counter(f["emotion"] for f in fields)
    speakers = Counter(f["speaker"] for f in fields)
    if len(fields) != corpus.published_total:
        lines.append(f"{len(fields)} of {corpus.published_total} published files")
    missing = [s for s in corpus.published_speakers if s not in speakers]
    if missing:
        lines.append(f"missing speakers {', '.join(missing)}")
    unknown = sorted(set(speakers) - set(corpus.published_speakers))
    if unknown:
        lines.append(f"speakers not in the release {', '.join(unknown)}")
    for code, expected in corpus.published_emotions.items():
        if emotions.get(code, 0) != expected:
            lines.append(f"emotion {code}: {emotions.get(code, 0)} of {expected} published")
    if corpus.files_per_speaker is not None:
        for speaker in corpus.published_speakers:
            expected = corpus.speaker_exceptions.get(speaker, corpus.files_per_speaker)
            if speaker in speakers and speakers[speaker] != expected:
                lines.append(f"speaker {speaker}: {speakers[speaker]} of {expected} published")
    return lines


def _warn_counts(corpus: NamedFilesCorpus, root: Path, fields: Sequence[Mapping[str, str]]) -> None:
    differences = count_check(corpus, fields)
    if differences:
        logger.warning(
            "%s at %s differs from the published release (a partial copy?): %s",
            corpus.name,
            root,
            "; ".join(differences),
        )


def wav_files(root: Path) -> list[Path]:
    """Every .wav under `root` (any case of the suffix), sorted: what the reader and the count
    check both scan."""
    return sorted(p for p in root.rglob("*") if p.suffix.lower() == ".wav" and p.is_file())


def kept(spec: NamedFilesCorpus, fields: Mapping[str, str]) -> bool:
    """False for another part of the corpus (e.g. RAVDESS song), which is not a bad file."""
    return all(fields[key] == value for key, value in spec.keep.items())


def read_named_files(
    corpus: str,
    root: str | Path,
    label_map: Mapping[str, str],
    on_bad_clip: BadClipPolicy = "fail",
    keep_unmapped: bool = False,
) -> list[Clip]:
    """Clips of `corpus` under `root` whose emotion code is in `label_map`, sorted by clip_id;
    `keep_unmapped`: the other codes' clips too, labelled with their code (speaker audio)."""
    spec = _corpus(corpus)
    root = Path(root).expanduser().resolve()
    if not root.is_dir():
        raise SegserError(f"{root}: {spec.name} root not found. Point dataset.root at the corpus")
    paths = wav_files(root)
    if not paths:
        raise SegserError(f"{root}: no .wav files. Point dataset.root at the {spec.name} release")
    bad_clips = BadClips(on_bad_clip, root)
    read_fields, clips, dropped = [], [], Counter()
    for path in paths:
        try:
            fields = parse_file_name(spec, path)
            if not kept(spec, fields):
                continue
            read_fields.append(fields)
            code = fields["emotion"]
            if code not in label_map and not keep_unmapped:
                dropped[code] += 1
                continue
            speaker = fields["speaker"]  # session = speaker: each actor recorded alone
            label = label_map.get(code, code)
            clips.append(read_clip(path.stem, path, label, speaker, speaker))
        except BadClipError as err:
            bad_clips.handle(err)
    _warn_counts(spec, root, read_fields)
    logger.info(
        "%s: %d files read; kept %d as %s; dropped codes outside dataset.label_map: %s",
        spec.name,
        len(read_fields),
        len(clips),
        label_counts(clips),
        dict(sorted(dropped.items())) or "none",
    )
    return bad_clips.finish(clips)


def main(argv: Sequence[str] | None = None) -> int:
    """`python -m segser.data.corpora.named_files CORPUS ROOT`: count a release."""
    parser = argparse.ArgumentParser(
        prog="python -m segser.data.corpora.named_files", description=main.__doc__
    )
    parser.add_argument("corpus", choices=sorted(CORPORA))
    parser.add_argument("root", type=Path)
    args = parser.parse_args(argv)
    spec = CORPORA[args.corpus]
    fields, bad = [], 0
    for path in wav_files(args.root):
        try:
            parsed = parse_file_name(spec, path)
        except BadClipError as err:
            print(f"bad name: {err}", file=sys.stderr)
            bad += 1
            continue
        if kept(spec, parsed):
            fields.append(parsed)
    print(f"{spec.name}: {len(fields)} files, {bad} badly named")
    print("emotions:", dict(sorted(Counter(f["emotion"] for f in fields).items())))
    differences = count_check(spec, fields)
    print("\n".join(differences) if differences else "matches the published counts")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
