"""A dataset of the user's own by config alone (`datasets.<name>.records`): a folder of WFDB or
Challenge records, labelled by a CSV (one 0/1 column per class, or a column of class names) or
by the headers' `#Dx:` codes; generated records, the genuine ones of ../shared/real-ecg when that
folder exists, and a tiny study through Snakemake (slow).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import tarfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import wfdb
import yaml
from snakemake.utils import validate
from snakemake_interface_common.exceptions import WorkflowError
from test_datasets import PTBXL_LEAD_NAMES, lead_constants, ramp, write_challenge
from tiny_study import REPO, SCHEMA, plan, snakemake, tiny_config

from ecg_transfer import datasets, demo
from ecg_transfer.datasets import NAMES, BadRecordError
from ecg_transfer.datasets.challenge import CPSC2018_TEXT_CODES, diagnosis_codes
from ecg_transfer.datasets.protocols import EQUIVALENT_CODES
from ecg_transfer.datasets.records import RecordsSpec
from ecg_transfer.datasets.wfdb_io import read_header
from ecg_transfer.prepare import make_part, write_index
from ecg_transfer.shards import read_shard

NAME = "my_clinic"
ONE_HOT = {"classes": ["NORM", "AF", "LBBB"], "labels_csv": "labels.csv"}
REAL = Path(__file__).resolve().parents[2] / "shared" / "real-ecg"


def write_wfdb(folder: Path, name: str, digital: np.ndarray, leads=PTBXL_LEAD_NAMES,
               fs: int = 500) -> Path:
    """A WFDB record (.hea + format-16 .dat) via wfdb.wrsamp; `digital` is (leads, samples)."""
    folder.mkdir(parents=True, exist_ok=True)
    wfdb.wrsamp(name, fs=fs, units=["mV"] * len(leads), sig_name=list(leads),
                d_signal=digital.T.astype(np.int64), fmt=["16"] * len(leads),
                adc_gain=[1000.0] * len(leads), baseline=[0] * len(leads),
                write_dir=str(folder))
    return folder / f"{name}.hea"


def clinic(root: Path, labels: str = "record_id,NORM,AF,LBBB,age\n"
           "c1,1,0,0,50\nc2,0,1,1,61\nw1,0,1,0,70\nw2,1,0,0,44\n") -> Path:
    """Two Challenge records and two WFDB ones in nested folders, and a labels CSV."""
    write_challenge(root / "site_a" / "2024", "c1", ramp(5000), "426783006")
    write_challenge(root / "site_a", "c2", ramp(5000), "164889003,164909002")
    write_wfdb(root / "site_b", "w1", ramp(5000))
    write_wfdb(root / "site_b" / "deep" / "er", "w2", ramp(6000))
    (root / "labels.csv").write_text(labels)
    return root


def named(rs: datasets.RecordSet) -> dict[str, list[str]]:
    return {r: [c for c, v in zip(rs.classes, row, strict=True) if v]
            for r, row in zip(rs.record_ids, rs.labels, strict=True)}


# --- labels --------------------------------------------------------------------------------------


def test_a_csv_with_one_column_per_class_labels_wfdb_and_challenge_records_anywhere_below(
        tmp_path):
    rs = datasets.load(NAME, clinic(tmp_path / "mine"), "paper", records=ONE_HOT)
    assert rs.record_ids == ["c1", "c2", "w1", "w2"]
    assert named(rs) == {"c1": ["NORM"], "c2": ["AF", "LBBB"], "w1": ["AF"], "w2": ["NORM"]}
    assert rs.signals.shape == (4, 12, 1000) and rs.fs == 100 and rs.classes == ONE_HOT["classes"]
    # millivolts (no per-record scaling): ramp value t + j, 1000 adu/mV, every 5th sample kept
    np.testing.assert_allclose(rs.signals[2, 3, :3], np.array([3, 8, 13]) / 1000, rtol=1e-6)
    assert rs.patient_ids is None and rs.folds is None


def test_a_csv_column_of_label_names_split_by_the_delimiter(tmp_path):
    root = clinic(tmp_path / "mine", 'id,dx\nc1,NORM\nc2," AF ; LBBB"\nw1,AF\nw2,\n')
    spec = {"classes": ["NORM", "AF", "LBBB"], "labels_csv": "labels.csv", "id_column": "id",
            "label_column": "dx", "label_delimiter": ";"}
    rs = datasets.load(NAME, root, "sound", records=spec)
    # an empty cell: none of the classes
    assert named(rs) == {"c1": ["NORM"], "c2": ["AF", "LBBB"], "w1": ["AF"], "w2": []}
    (root / "labels.csv").write_text('id,dx\nc1,NORM\nc2,"AF,LBBB"\nw1,AF\nw2,NORM\n')
    rs = datasets.load(NAME, root, "sound", records={**spec, "label_delimiter": ","})
    assert named(rs)["c2"] == ["AF", "LBBB"]


def test_dx_codes_map_the_headers_diagnoses_to_classes(tmp_path):
    root = tmp_path / "mine"
    write_challenge(root, "r1", ramp(5000), "426783006")
    write_challenge(root, "r2", ramp(5000), "164889003,713427006")  # AF, CRBBB
    write_challenge(root, "r3", ramp(5000), "RBBB,251146004")  # text, and an unmapped code
    spec = {"classes": ["NORM", "AF", "RBBB"],
            "dx_codes": {"NORM": [426783006], "AF": ["164889003"], "RBBB": ["59118001", "rbbb"]}}
    paper = datasets.load(NAME, root, "paper", records=spec)
    assert named(paper) == {"r1": ["NORM"], "r2": ["AF"], "r3": ["RBBB"]}
    sound = datasets.load(NAME, root, "sound", records=spec)  # merges CRBBB into RBBB
    assert named(sound) == {"r1": ["NORM"], "r2": ["AF", "RBBB"], "r3": ["RBBB"]}


@pytest.mark.parametrize("fmt", ["wfdb", "challenge"])
def test_leads_are_put_in_the_standard_order_by_the_headers_names(tmp_path, fmt):
    order = [11, 0, 5, 1, 10, 2, 9, 3, 8, 4, 7, 6]  # the file's signal i is standard lead order[i]
    names = [["I", "II", "III", "aVR", "aVL", "aVF", "V1", "V2", "V3", "V4", "V5", "V6"][j]
             for j in order]
    digital = lead_constants(5000)[order]  # standard lead j holds (j + 1) * 100
    root = tmp_path / "mine"
    if fmt == "wfdb":
        write_wfdb(root, "r1", digital, leads=[n.upper() for n in names])
    else:
        write_challenge(root, "r1", digital, "426783006", leads=tuple(names))
    (root / "labels.csv").write_text("record_id,NORM,AF,LBBB\nr1,1,0,0\n")
    rs = datasets.load(NAME, root, "sound", records=ONE_HOT)
    np.testing.assert_allclose(rs.signals[0, :, 0], (np.arange(12) + 1) * 0.1, rtol=1e-6)
    assert rs.leads == list(datasets.STANDARD_LEADS)


def test_the_shard_names_the_users_dataset_and_its_patients_stay_in_one_split(tmp_path):
    root = tmp_path / "mine"
    rows = ["record_id,NORM,AF,LBBB,patient"]
    for i in range(24):
        write_challenge(root / f"p{i // 3}", f"r{i:02d}", ramp(5000) + i, "426783006")
        rows.append(f"r{i:02d},{int(i % 2 == 0)},{int(i % 2 == 1)},0,p{i // 3}")
    (root / "labels.csv").write_text("\n".join(rows) + "\n")
    out = tmp_path / "out"
    out.mkdir()
    spec = {**ONE_HOT, "patient_column": "patient"}
    meta = write_index(NAME, root, out / "index.csv", out / "index.json",
                       preprocess={"protocol": "sound", "fs": 100, "seconds": 10},
                       split={"test_size": 0.33, "random_state": 1}, parts=1, records=spec)
    assert meta["dataset"] == NAME and meta["settings"]["scaling"] == "none"
    assert meta["count_warnings"] == []  # no paper counts to compare with
    make_part(out / "index.csv", out / "index.json", root, 0, out / "part0.h5",
              out / "part0.q.csv")
    shard = read_shard([out / "part0.h5"])
    assert len(shard.record_ids) == 24 and shard.dataset == NAME
    assert shard.patient_ids is not None
    table = pd.read_csv(out / "index.csv", dtype={"patient_id": str})
    assert (table.groupby("patient_id")["split"].nunique() == 1).all()


# --- bad records: the error naming the file and the record, or one quarantine row -----------------


def stages(root: Path, out: Path, on_bad: str, records: dict, protocol: str = "paper"):
    """The workflow's two data stages, as the Snakemake jobs call them."""
    out.mkdir(parents=True)
    meta = write_index(NAME, root, out / "index.csv", out / "index.json",
                       preprocess={"protocol": protocol, "fs": 100, "seconds": 10},
                       split={"test_size": 0.33, "random_state": 1}, parts=2,
                       on_bad_record=on_bad, records=records)
    quarantine = []
    for i in range(meta["n_parts"]):
        make_part(out / "index.csv", out / "index.json", root, i, out / f"part{i}.h5",
                  out / f"part{i}.q.csv", on_bad_record=on_bad)
        quarantine.append(pd.read_csv(out / f"part{i}.q.csv", dtype=str))
    shard = read_shard([out / f"part{i}.h5" for i in range(meta["n_parts"])])
    return shard, pd.concat(quarantine, ignore_index=True)


def check(root: Path, tmp: Path, records: dict, match: str, record_id: str, reason: str,
          n_good: int) -> None:
    with pytest.raises(BadRecordError, match=match):
        stages(root, tmp / "error", "error", records)
    shard, quarantine = stages(root, tmp / "skip", "skip", records)
    assert len(shard.record_ids) == n_good and record_id not in shard.record_ids
    assert quarantine.record_id.tolist() == [record_id]
    assert reason in quarantine.reason[0], quarantine.reason[0]


def test_a_record_without_a_label_row(tmp_path):
    root = clinic(tmp_path / "mine")
    write_wfdb(root / "site_b", "w3", ramp(5000))
    check(root, tmp_path, ONE_HOT, r"site_b/w3\.hea: no label row in .*labels\.csv .*\(record w3\)",
          "w3", "no label row", 4)


def test_a_label_row_without_a_record(tmp_path):
    root = clinic(tmp_path / "mine", "record_id,NORM,AF,LBBB\nc1,1,0,0\nc2,0,1,0\nw1,0,1,0\n"
                  "w2,1,0,0\nghost,1,0,0\n")
    check(root, tmp_path, ONE_HOT,
          r"labels\.csv, line 6: names record 'ghost', but no header ghost\.hea .*\(record ghost\)",
          "ghost", "no header ghost.hea", 4)


def test_an_unknown_label_name(tmp_path):
    root = clinic(tmp_path / "mine", "id,dx\nc1,NORM\nc2,AF|RBBB\nw1,AF\nw2,NORM\n")
    spec = {**ONE_HOT, "id_column": "id", "label_column": "dx", "label_delimiter": "|"}
    check(root, tmp_path, spec,
          r"labels\.csv, line 3: column 'dx' has unknown label\(s\) \['RBBB'\].*\(record c2\)",
          "c2", "unknown label(s) ['RBBB']", 3)


def test_a_class_column_that_is_not_0_or_1(tmp_path):
    root = clinic(tmp_path / "mine", "record_id,NORM,AF,LBBB\nc1,1,0,0\nc2,0,yes,0\nw1,0,1,0\n"
                  "w2,1,0,\n")
    with pytest.raises(BadRecordError, match=r"line 3: column 'AF' is 'yes'; expected 0 or 1"):
        stages(root, tmp_path / "error", "error", ONE_HOT)
    shard, quarantine = stages(root, tmp_path / "skip", "skip", ONE_HOT)
    assert quarantine.record_id.tolist() == ["c2", "w2"] and shard.record_ids == ["c1", "w1"]
    assert "column 'LBBB' is ''" in quarantine.reason[1]


def test_a_record_missing_a_lead(tmp_path):
    root = clinic(tmp_path / "mine")
    write_wfdb(root / "site_b", "w1", ramp(5000, leads=11), leads=PTBXL_LEAD_NAMES[:11])
    check(root, tmp_path, ONE_HOT, r"w1\.hea: missing standard lead\(s\) \['V6'\]", "w1",
          "missing standard lead", 3)


def test_a_signal_file_without_its_header(tmp_path):
    root = clinic(tmp_path / "mine")
    (root / "site_a" / "2024" / "c1.hea").unlink()
    check(root, tmp_path, ONE_HOT, r"c1\.mat: no header c1\.hea beside it \(record c1\)", "c1",
          "no header", 3)


def test_a_header_without_a_dx_line_when_labels_come_from_dx_codes(tmp_path):
    root = clinic(tmp_path / "mine")
    spec = {"classes": ["NORM", "AF"], "dx_codes": {"NORM": [426783006], "AF": [164889003]}}
    # the WFDB records have no #Dx line; the Challenge ones do
    with pytest.raises(BadRecordError, match=r"w1\.hea: 0 '#Dx:' comment lines"):
        stages(root, tmp_path / "error", "error", spec)
    shard, quarantine = stages(root, tmp_path / "skip", "skip", spec)
    assert shard.record_ids == ["c1", "c2"] and quarantine.record_id.tolist() == ["w1", "w2"]


@pytest.mark.parametrize(("labels", "match"), [
    ("record_id,NORM,AF,LBBB\nc1,1,0,0\nc2,0,1,0\nc1,0,1,0\n",
     r"labels\.csv: record id\(s\) \['c1'\] appear in more than one row"),
    ("record_id,NORM,AF\nc1,1,0\n",
     r"labels\.csv: missing column\(s\) \['LBBB'\].*columns found: \['record_id', 'NORM', 'AF'\]"),
    ("record,NORM,AF,LBBB\nc1,1,0,0\n", r"missing column\(s\) \['record_id'\]"),
    ("record_id,NORM,AF,LBBB\n,1,0,0\n", r"labels\.csv, line 2: column 'record_id' is empty"),
])
def test_a_labels_csv_that_is_wrong_as_a_whole_stops_the_index(tmp_path, labels, match):
    root = clinic(tmp_path / "mine", labels)
    for on_bad in ("error", "skip"):
        with pytest.raises(ValueError, match=match):
            datasets.index(NAME, root, on_bad_record=on_bad, records=ONE_HOT)


def test_two_records_of_one_name_stop_the_index_naming_both(tmp_path):
    root = clinic(tmp_path / "mine")
    write_wfdb(root / "site_c", "c1", ramp(5000))
    with pytest.raises(ValueError, match=r"record c1 exists twice: .*site_a/2024/c1\.hea and "
                                         r".*site_c/c1\.hea"):
        datasets.index(NAME, root, on_bad_record="skip", records=ONE_HOT)


def test_a_missing_labels_csv_or_folder_without_records(tmp_path):
    root = clinic(tmp_path / "mine")
    with pytest.raises(FileNotFoundError, match=r"no labels CSV 'other\.csv'"):
        datasets.index(NAME, root, records={**ONE_HOT, "labels_csv": "other.csv"})
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match=r"empty: no WFDB or Challenge records"):
        datasets.index(NAME, tmp_path / "empty", records=ONE_HOT)
    # searched below the folder when not at the path given; an absolute path is used as is
    shutil.move(root / "labels.csv", root / "site_b" / "labels.csv")
    assert len(datasets.index(NAME, root, records=ONE_HOT).table) == 4
    outside = shutil.move(root / "site_b" / "labels.csv", tmp_path / "elsewhere.csv")
    absolute = {**ONE_HOT, "labels_csv": str(outside)}
    assert len(datasets.index(NAME, root, records=absolute).table) == 4


# --- the name and the records section -------------------------------------------------------------


@pytest.mark.parametrize("name", NAMES)
def test_a_name_that_shadows_a_built_in_dataset_is_refused(tmp_path, name):
    with pytest.raises(ValueError, match=rf"datasets\.{name}\.records: '{name}' is a built-in "
                                         "dataset"):
        datasets.index(name, clinic(tmp_path / "mine"), records=ONE_HOT)


@pytest.mark.parametrize("name", ["My_Clinic", "my-clinic", "1clinic", "x" * 33, "../up", ""])
def test_a_name_that_is_not_a_safe_identifier_is_refused(tmp_path, name):
    with pytest.raises(ValueError, match=r"is not a safe identifier; expected lower-case"):
        datasets.index(name, clinic(tmp_path / "mine"), records=ONE_HOT)


def test_a_name_that_is_not_built_in_needs_a_records_section(tmp_path):
    with pytest.raises(ValueError, match=r"unknown dataset 'my_clinic'.*records section"):
        datasets.index(NAME, tmp_path)


@pytest.mark.parametrize(("section", "match"), [
    ({"classes": ["A"]}, "neither labels_csv nor dx_codes"),
    ({"classes": ["A"], "labels_csv": "l.csv", "dx_codes": {"A": [1]}}, "both labels_csv and"),
    ({"classes": ["A", "B"], "dx_codes": {"A": [1], "C": [2]}},
     r"dx_codes: classes without codes \['B'\]; entries that are not classes \['C'\]"),
    ({"classes": ["A"], "dx_codes": {"A": [1]}, "id_column": "id"},
     r"\['id_column'\] apply to labels_csv only"),
    ({"classes": ["A", "A"], "labels_csv": "l.csv"}, r"classes: \['A'\] appear more than once"),
    ({"classes": [], "labels_csv": "l.csv"}, "classes: \\[\\]; expected a non-empty list"),
    ({"classes": ["A;B"], "labels_csv": "l.csv", "label_column": "dx", "label_delimiter": ";"},
     r"classes: \['A;B'\] contain the label_delimiter"),
    ({"classes": ["A"], "labels_csv": "l.csv", "colour": "red"}, r"unknown key\(s\) \['colour'\]"),
])
def test_a_malformed_records_section_names_its_key(section, match):
    with pytest.raises(ValueError, match=rf"datasets\.{NAME}\.records[.:].*{match}"):
        RecordsSpec.from_config(NAME, section)


def test_the_defaults_of_the_records_section_are_those_the_schema_documents():
    spec = RecordsSpec.from_config(NAME, {"classes": ["A"], "labels_csv": "l.csv"})
    props = yaml.safe_load(SCHEMA.read_text())["$defs"]["dataset"]["properties"]["records"][
        "properties"]
    assert f"(default {spec.id_column})" in props["id_column"]["description"]
    assert f'(default "{spec.label_delimiter}")' in props["label_delimiter"]["description"]
    assert spec.label_column is None and "null (default)" in props["label_column"]["description"]
    assert spec.patient_column is None
    assert "(default null)" in props["patient_column"]["description"]


# --- the config ----------------------------------------------------------------------------------


def paper_config() -> dict:
    return yaml.safe_load((REPO / "config.yaml").read_text())


def test_the_schema_lists_the_built_in_datasets_and_takes_a_folder_of_records():
    schema = yaml.safe_load(SCHEMA.read_text())
    assert tuple(schema["properties"]["datasets"]["properties"]) == NAMES
    cfg = paper_config()
    cfg["datasets"][NAME] = {"local_dir": "data/mine", "records": dict(ONE_HOT)}
    cfg["downstream"].append(NAME)
    cfg["size_axis"]["train_sizes"][NAME] = [20]
    validate(cfg, str(SCHEMA))
    assert cfg["datasets"][NAME]["parts"] == 1  # the schema's defaults, as for a built-in one
    del cfg["datasets"][NAME]["local_dir"]  # neither local_dir nor url: nowhere to read from
    with pytest.raises(WorkflowError,
                       match=r"not valid under any[\s\S]*\['datasets'\]\['my_clinic'\]"):
        validate(cfg, str(SCHEMA))


def dry_run(cfg: dict, tmp_path: Path) -> subprocess.CompletedProcess:
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(cfg))
    return plan(tmp_path, tmp_path / "c.yaml")


def test_a_built_in_name_with_a_records_section_stops_the_plan_naming_the_key(tmp_path):
    cfg = paper_config()
    cfg["datasets"]["ptb"]["records"] = dict(ONE_HOT)
    out = dry_run(cfg, tmp_path)
    assert out.returncode != 0
    assert "datasets.ptb.records: 'ptb' is a built-in dataset" in out.stdout + out.stderr


def test_a_folder_of_records_is_a_downstream_set_of_the_plan(tmp_path):
    cfg = paper_config()
    cfg["datasets"][NAME] = {"local_dir": str(clinic(tmp_path / "mine")),
                             "records": dict(ONE_HOT), "preprocess": {"protocol": "sound"}}
    cfg["downstream"] = [NAME]
    cfg["size_axis"] = {"enabled": False}
    out = dry_run(cfg, tmp_path)
    assert out.returncode == 0, out.stdout + out.stderr
    counts = dict(line.split()[:2] for line in out.stdout.splitlines()
                  if len(line.split()) == 2 and line.split()[1].isdigit())
    assert counts["finetune"] == "18" and counts["train_scratch"] == "6"  # 3 upstreams x 6 archs
    # its local_dir is read where it lies: downloads are the three upstream datasets' only
    assert counts["index_dataset"] == "4" and counts["download"] == counts["extract"] == "3"


# --- genuine records ------------------------------------------------------------------------------

_REAL_FOLDERS = {"cpsc2018": "cpsc2018_challenge2020", "georgia": "georgia_challenge2021"}


@pytest.mark.skipif(not REAL.is_dir(), reason=f"{REAL} (genuine records) is absent")
def test_genuine_challenge_records_as_a_folder_of_ones_own(tmp_path):
    """CPSC2018's and Georgia's genuine records in one folder, labelled by a CSV written from
    their headers: the same signals and labels as the built-in readers give them."""
    from ecg_transfer.datasets.challenge import CPSC2018_CLASSES, GEORGIA_CLASSES

    root = tmp_path / "mine"
    class_of = {code: cls for cls, code in (*CPSC2018_CLASSES, *GEORGIA_CLASSES)}
    classes = list(dict.fromkeys(class_of.values()))
    rows = []
    for dataset, folder in _REAL_FOLDERS.items():
        shutil.copytree(REAL / folder, root / folder)
        for header in sorted((root / folder).glob("*.hea")):
            codes = diagnosis_codes(read_header(header), dataset)
            names = {class_of[EQUIVALENT_CODES.get(c, c)] for c in codes
                     if EQUIVALENT_CODES.get(c, c) in class_of}
            rows.append({"record": header.stem, "diagnoses": ";".join(sorted(names))})
    pd.DataFrame(rows).to_csv(root / "labels.csv", index=False)
    by_csv = {"classes": classes, "labels_csv": "labels.csv", "id_column": "record",
              "label_column": "diagnoses", "label_delimiter": ";"}
    text = {code: token.upper() for token, code in CPSC2018_TEXT_CODES.items()}
    by_dx = {"classes": classes, "dx_codes": {cls: [code, *([text[code]] if code in text else [])]
                                              for code, cls in class_of.items()}}
    mine = datasets.load(NAME, root, "sound", records=by_csv)
    assert named(datasets.load(NAME, root, "sound", records=by_dx)) == named(mine)
    assert len(mine.record_ids) == len(rows) and mine.dropped == [] and mine.quarantined == []
    for dataset, folder in _REAL_FOLDERS.items():
        theirs = datasets.load(dataset, REAL / folder, "sound")
        rows_mine = [mine.record_ids.index(r) for r in theirs.record_ids]
        np.testing.assert_array_equal(mine.signals[rows_mine], theirs.signals)
        cols = [mine.classes.index(c) for c in theirs.classes]
        np.testing.assert_array_equal(mine.labels[rows_mine][:, cols], theirs.labels)


# --- a tiny study through Snakemake ---------------------------------------------------------------


def demo_folder(root: Path, labels: Path, *, id_column: str = "record_id",
                label_column: str = "diagnoses") -> dict:
    """Georgia's demo mirror (60 records) unpacked into ``root`` as a folder of one's own, with
    ``labels`` a CSV of class names (";") written from its headers; its `records` section."""
    from ecg_transfer.datasets.challenge import GEORGIA_CLASSES

    archive = demo.write_archive("georgia", root.with_suffix(".tar"), 60, difficulty=0.1)
    with tarfile.open(archive) as tar:
        tar.extractall(root, filter="data")
    class_of = {code: cls for cls, code in GEORGIA_CLASSES[:5]}
    rows = []
    for header in sorted(root.rglob("*.hea")):
        codes = diagnosis_codes(read_header(header), "georgia")
        rows.append((header.stem, ";".join(sorted({class_of[c] for c in codes if c in class_of}))))
    pd.DataFrame(rows, columns=[id_column, label_column]).to_csv(labels, index=False)
    return {"classes": list(class_of.values()),
            "labels_csv": labels.name if labels.parent == root else str(labels),
            "id_column": id_column, "label_column": label_column, "label_delimiter": ";"}


@pytest.mark.slow
def test_a_tiny_study_fine_tunes_and_trains_from_scratch_on_a_folder_of_records(tmp_path):
    """The Georgia demo mirror's records, unpacked, labelled by a CSV of class names written from
    their headers: fine-tuned from a tiny PTB-XL model and trained from scratch; the tables name
    the user's dataset."""
    root = tmp_path / "clinic_records"
    records = demo_folder(root, tmp_path / "labels.csv", id_column="ecg", label_column="findings")
    work = tmp_path / "study"
    work.mkdir()
    cfg = tiny_config(records={"ptbxl": 60}, architectures=("resnet1d18",), upstream=("ptbxl",),
                      downstream=(NAME,), epochs=1)
    cfg["datasets"] = {"ptbxl": cfg["datasets"]["ptbxl"], NAME: {
        "local_dir": str(root),
        "records": records,
        "preprocess": {"protocol": "sound", "fs": 50, "seconds": 4},
    }}
    cfg["results"] = {"n_boot": 1000}
    (work / "config.yaml").write_text(yaml.safe_dump(cfg))
    snakemake(work)
    meta = json.loads((work / "results" / "index" / f"{NAME}.json").read_text())
    assert meta["dataset"] == NAME and meta["n_records"] == 60
    table = pd.read_csv(work / "results" / "tables" / "f1.csv")
    mine = table[table.downstream == NAME]
    assert sorted(mine.regime) == ["finetune", "scratch"]
    assert mine[mine.regime == "finetune"].upstream.tolist() == ["ptbxl"]
    assert f"## {NAME}" in (work / "results" / "tables" / "f1.md").read_text()
    assert (work / "results" / "figures" / f"curves_{NAME}.png").is_file()
    assert not (work / "resources" / "raw" / NAME).exists()  # read where it lies: no copy
