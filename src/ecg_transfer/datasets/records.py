"""A dataset of the user's own, read by config alone: a folder of WFDB or Challenge records,
labelled by a CSV or by the headers' `#Dx:` codes (config `datasets.<name>.records`).

Records are the `*.hea` headers anywhere below the dataset's root (`local_dir`, or the folder
an archive at `url` was extracted into). A header names its signal files, `.dat` (WFDB) or `.mat`
(the Challenge's MATLAB v4 `val`), so both formats are read alike by `wfdb_io`, in millivolts,
with the leads put in the standard order by the names the header gives them (a record without
all twelve is a bad record). A record's id is its header's file name without `.hea`.

Labels come from one of two places (`RecordsSpec`):

- `labels_csv`: a comma-separated file with a record-id column (`id_column`) and either one 0/1
  column per class, named as the class, or (with `label_column`) one column of class names
  separated by `label_delimiter` (default ","; a cell that holds the CSV's own comma must be
  quoted, as spreadsheets do); an empty cell means none of the classes. With `patient_column`
  the `sound` split keeps each patient's records in one split.
- `dx_codes`: class -> the `#Dx:` entries (SNOMED-CT codes, or text such as CPSC2018's `RBBB`,
  matched ignoring case) that make a record positive for it. An entry in no class is ignored,
  as the paper ignored Georgia's other diagnoses; under `sound` the Challenge's equivalent codes
  are merged on both sides.

Every problem of one record is a bad record (stops the index, or a quarantine row with
on_bad_record "skip"), named by its file and record id: a record without a label row, a label
row without a record, a label that is not one of the classes or not 0/1, a signal file without
its header, a missing lead. A CSV naming a record twice, or two headers of one name, stop the
index: there is no single record to leave out.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, fields
from pathlib import Path

import numpy as np
import pandas as pd

from .errors import BadRecordError, as_bad_record
from .indexing import IndexBuilder
from .names import check_user_name
from .settings import Settings, canonical_codes
from .wfdb_io import Header, dx_tokens, index_checks, read_header

logger = logging.getLogger(__name__)

_CSV_KEYS = ("id_column", "label_column", "label_delimiter", "patient_column")
_SIGNAL_SUFFIXES = (".dat", ".mat")


@dataclass(frozen=True)
class RecordsSpec:
    """A `records:` config section, checked; the defaults are those the README documents."""

    classes: tuple[str, ...]
    labels_csv: str | None = None
    id_column: str = "record_id"
    label_column: str | None = None
    label_delimiter: str = ","
    patient_column: str | None = None
    dx_codes: Mapping[str, tuple[str, ...]] | None = None

    @classmethod
    def from_config(cls, name: str, section: object) -> RecordsSpec:
        """The section of dataset `name`; ValueError naming the key that is wrong and why."""
        where = f"datasets.{name}.records"
        check_user_name(name, where)
        if not isinstance(section, Mapping):
            raise ValueError(f"{where}: {section!r}; expected a mapping with classes and "
                             "labels_csv or dx_codes")
        known = [f.name for f in fields(cls)]
        unknown = sorted(set(section) - set(known))
        if unknown:
            raise ValueError(f"{where}: unknown key(s) {unknown}; expected some of {known}")
        classes = section.get("classes")
        if (not isinstance(classes, list | tuple) or not classes
                or not all(isinstance(c, str) and c and c == c.strip() for c in classes)):
            raise ValueError(f"{where}.classes: {classes!r}; expected a non-empty list of class "
                             "names (strings without surrounding spaces)")
        if len(set(classes)) != len(classes):
            repeated = sorted({c for c in classes if classes.count(c) > 1})
            raise ValueError(f"{where}.classes: {repeated} appear more than once")
        has_csv, has_dx = section.get("labels_csv") is not None, section.get("dx_codes") is not None
        if has_csv == has_dx:
            given = "both labels_csv and dx_codes" if has_csv else "neither labels_csv nor dx_codes"
            raise ValueError(
                f"{where}: {given}; give exactly one: labels_csv (a CSV of labels) or dx_codes "
                "(class -> the headers' #Dx codes)"
            )
        values = {k: section[k] for k in known if section.get(k) is not None}
        values["classes"] = tuple(classes)
        if has_dx:
            stray = [k for k in _CSV_KEYS if k in values]
            if stray:
                raise ValueError(f"{where}: {stray} apply to labels_csv only; the labels come "
                                 "from dx_codes")
            values["dx_codes"] = _check_dx_codes(section["dx_codes"], classes, f"{where}.dx_codes")
        else:
            for key in ("labels_csv", *_CSV_KEYS):
                if key in values and not (isinstance(values[key], str) and values[key]):
                    raise ValueError(f"{where}.{key}: {values[key]!r}; expected a non-empty "
                                     "string")
            delimiter = values.get("label_delimiter", cls.label_delimiter)
            clash = [c for c in classes if delimiter in c]
            if "label_column" in values and clash:
                raise ValueError(f"{where}.classes: {clash} contain the label_delimiter "
                                 f"{delimiter!r}; choose another label_delimiter")
        return cls(**values)


def _check_dx_codes(dx: object, classes: list[str], where: str) -> dict[str, tuple[str, ...]]:
    if not isinstance(dx, Mapping):
        raise ValueError(f"{where}: {dx!r}; expected a mapping of class -> list of #Dx codes")
    missing = [c for c in classes if c not in dx]
    extra = [str(c) for c in dx if c not in classes]
    if missing or extra:
        raise ValueError(
            f"{where}: {'classes without codes ' + str(missing) if missing else ''}"
            f"{'; ' if missing and extra else ''}"
            f"{'entries that are not classes ' + str(extra) if extra else ''}; expected one "
            f"entry per class of {list(classes)}"
        )
    out = {}
    for cls, codes in dx.items():
        if (not isinstance(codes, list | tuple) or not codes
                or not all(isinstance(c, str | int) and not isinstance(c, bool)
                           and str(c).strip() for c in codes)):
            raise ValueError(f"{where}.{cls}: {codes!r}; expected a non-empty list of codes")
        out[cls] = tuple(str(c).strip() for c in codes)
    return out


@dataclass(frozen=True)
class _LabelRow:
    """One row of the labels CSV: its line in the file, and the label or why it is unreadable."""

    line: int
    label: np.ndarray | None
    error: str
    patient: str


@dataclass(frozen=True)
class RecordsReader:
    """The reader of one folder of records, with the interface of the built-in reader modules
    (`classes`, `file_leads`, `index`)."""

    spec: RecordsSpec

    def classes(self, dataset: str) -> list[str]:
        return list(self.spec.classes)

    def file_leads(self, dataset: str) -> None:
        """None: every header names its leads; `read_record` puts them in the standard order."""
        return None

    def index(self, root: Path, builder: IndexBuilder) -> None:
        """One row per header below `root`, one BAD row per orphan signal file and per label row
        without a record (see the module docstring)."""
        spec, settings = self.spec, builder.settings
        headers, signal_files = _find_records(root)
        csv_path, rows = None, {}
        if spec.labels_csv is not None:
            csv_path = _find_csv(root, spec.labels_csv)
            rows = _read_labels(csv_path, spec)
        by_code = _code_classes(spec, settings)
        referenced: set[Path] = set()
        positives = np.zeros(len(spec.classes), np.int64)
        for record_id, path in headers.items():
            row = rows.pop(record_id, None)
            try:
                header = read_header(path)
                referenced.update(path.parent / s.file_name for s in header.signals)
                patient = ""
                if csv_path is None:
                    label = self._dx_label(header, by_code, settings)
                elif row is None:
                    raise BadRecordError(
                        record_id, path, f"no label row in {csv_path} (column "
                        f"{spec.id_column!r}); every record needs one",
                    )
                elif row.label is None:
                    raise BadRecordError(record_id, csv_path, row.error)
                else:
                    label, patient = row.label, row.patient
                content = index_checks(header, path, settings.protocol.hash_records)
            except (ValueError, OSError) as exc:
                builder.bad(as_bad_record(record_id, path, exc))
                continue
            positives += label
            builder.add(record_id, path, label, header.fs, header.sig_len, patient_id=patient,
                        content_hash=content)
        for record_id, path in _orphans(signal_files, headers, referenced):
            rows.pop(record_id, None)
            builder.bad(BadRecordError(record_id, path, f"no header {record_id}.hea beside it"))
        for record_id, row in sorted(rows.items()):
            builder.bad(BadRecordError(
                record_id, csv_path, f"{csv_path}, line {row.line}: names record {record_id!r}, "
                f"but no header {record_id}.hea is below {root}",
            ))
        never = [c for c, n in zip(spec.classes, positives, strict=True) if n == 0]
        if never:
            logger.warning("%s: no record is positive for class(es) %s; check the labels",
                           settings.dataset, never)

    def _dx_label(self, header: Header, by_code: dict[str, list[int]],
                  settings: Settings) -> np.ndarray:
        label = np.zeros(len(self.spec.classes), np.uint8)
        for code in canonical_codes(dx_tokens(header), settings):
            for j in by_code.get(code.casefold(), ()):
                label[j] = 1
        return label


def _code_classes(spec: RecordsSpec, settings: Settings) -> dict[str, list[int]]:
    """#Dx entry (case-folded, as the protocol scores it) -> the classes it makes positive."""
    out: dict[str, list[int]] = {}
    for j, cls in enumerate(spec.classes):
        for code in canonical_codes((spec.dx_codes or {}).get(cls, ()), settings):
            out.setdefault(code.casefold(), []).append(j)
    return out


def _find_records(root: Path) -> tuple[dict[str, Path], list[Path]]:
    """Record id -> header, sorted by id, and every signal file below `root`."""
    found: dict[str, Path] = {}
    for path in sorted(root.rglob("*.hea")):
        if path.stem in found:
            raise ValueError(
                f"record {path.stem} exists twice: {found[path.stem]} and {path}; record ids "
                "are header names, so each must be unique below the dataset's folder"
            )
        found[path.stem] = path
    signals = sorted(p for p in root.rglob("*") if p.suffix.lower() in _SIGNAL_SUFFIXES
                     and p.is_file())
    if not found and not signals:
        raise FileNotFoundError(
            f"{root}: no WFDB or Challenge records (*.hea with .dat or .mat) found in it or below"
        )
    return dict(sorted(found.items())), signals


def _orphans(signal_files: list[Path], headers: dict[str, Path],
             referenced: set[Path]) -> list[tuple[str, Path]]:
    """(record id, file) of the signal files that no header names and that have no header of
    their own name beside them."""
    out = []
    for path in signal_files:
        if path in referenced or path.with_suffix(".hea").is_file():
            continue
        if path.stem in headers:
            raise ValueError(
                f"record {path.stem} exists twice: {headers[path.stem]} and {path} (a signal "
                "file without its header); record ids must be unique below the dataset's folder"
            )
        out.append((path.stem, path))
    return out


def _find_csv(root: Path, name: str) -> Path:
    """The labels CSV: an absolute path, or a path relative to `root`, else searched below it."""
    path = Path(name)
    if path.is_absolute():
        if not path.is_file():
            raise FileNotFoundError(f"{path}: labels CSV (records.labels_csv) does not exist")
        return path
    if (root / path).is_file():
        return root / path
    hits = sorted(p for p in root.rglob(path.name) if p.is_file()
                  and p.as_posix().endswith("/" + path.as_posix()))
    if not hits:
        raise FileNotFoundError(
            f"{root}: no labels CSV {name!r} (records.labels_csv) in it or below"
        )
    if len(hits) > 1:
        raise ValueError(f"{root}: {len(hits)} files match labels CSV {name!r}: {hits}; "
                         "expected one (give its path relative to the folder)")
    return hits[0]


def _read_labels(path: Path, spec: RecordsSpec) -> dict[str, _LabelRow]:
    """Record id -> its row. Problems of the file (unreadable, a column missing, an id twice or
    empty) are ValueErrors; a label that cannot be read is that row's `error`."""
    try:
        table = pd.read_csv(path, dtype=str, keep_default_na=False)
    except (OSError, ValueError, pd.errors.ParserError) as exc:
        raise ValueError(f"{path}: unreadable CSV ({exc})") from exc
    table.columns = [str(c).strip() for c in table.columns]
    label_columns = [spec.label_column] if spec.label_column else list(spec.classes)
    wanted = [spec.id_column, *label_columns]
    if spec.patient_column:
        wanted.append(spec.patient_column)
    missing = [c for c in wanted if c not in table.columns]
    if missing:
        what = ("records.label_column" if spec.label_column
                else "one 0/1 column per class (or records.label_column)")
        raise ValueError(
            f"{path}: missing column(s) {missing}; expected the record id (records.id_column "
            f"{spec.id_column!r}) and {what}; columns found: {list(table.columns)}"
        )
    ids = table[spec.id_column].str.strip()
    lines = np.arange(len(table)) + 2  # line 1 is the column names
    empty = lines[(ids == "").to_numpy()]
    if len(empty):
        raise ValueError(f"{path}, line {empty[0]}: column {spec.id_column!r} is empty; every "
                         "label row must name its record")
    repeated = sorted(set(ids[ids.duplicated()]))
    if repeated:
        raise ValueError(f"{path}: record id(s) {repeated[:5]} appear in more than one row "
                         f"(column {spec.id_column!r}); expected one row per record")
    index = {c: j for j, c in enumerate(spec.classes)}
    rows = {}
    for line, record_id, (_, row) in zip(lines, ids, table.iterrows(), strict=True):
        label, error = _row_label(row, spec, index)
        patient = row[spec.patient_column].strip() if spec.patient_column else ""
        rows[record_id] = _LabelRow(int(line), label,
                                    f"{path}, line {line}: {error}" if error else "", patient)
    return rows


def _row_label(row: pd.Series, spec: RecordsSpec,
               index: dict[str, int]) -> tuple[np.ndarray | None, str]:
    """(label, "") or (None, why the row's label cannot be read)."""
    label = np.zeros(len(spec.classes), np.uint8)
    if spec.label_column:
        cell = row[spec.label_column]
        names = [t.strip() for t in cell.split(spec.label_delimiter) if t.strip()]
        unknown = [n for n in names if n not in index]
        if unknown:
            return None, (
                f"column {spec.label_column!r} has unknown label(s) {unknown}; expected names "
                f"of the classes {list(spec.classes)} separated by {spec.label_delimiter!r}"
            )
        for name in names:
            label[index[name]] = 1
        return label, ""
    for cls, j in index.items():
        value = row[cls].strip()
        try:
            number = float(value)
        except ValueError:
            number = None
        if number not in (0.0, 1.0):
            return None, f"column {cls!r} is {value!r}; expected 0 or 1"
        label[j] = int(number)
    return label, ""
