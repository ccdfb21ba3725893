# Data stages: (demo mirror) -> download -> extract -> index_dataset -> make_shard (one per part).
# With datasets.<name>.local_dir, index_dataset and make_shard read that folder instead. A folder
# of records of one's own (datasets.<name>.records) goes through the same rules.


rule make_demo_archive:
    output:
        "resources/demo-mirror/{dataset}.{fmt}",
    params:
        n_records=demo_records,
        demo=demo_params(),
        code_version=CODE_VERSION["demo"],
    conda:
        "../../envs/study.yaml"
    log:
        "logs/make_demo_archive/{dataset}.{fmt}.log",
    script:
        "../scripts/make_demo_archive.py"


rule download:
    input:
        download_input,
    output:
        "resources/downloads/{dataset}.archive",
    params:
        url=dataset_url,
        md5=dataset_md5,
        sha256=dataset_sha256,
        # where md5 and sha256 are null: SHA-256 of the first download, verified from then on
        checksum_lock=ecg_transfer.download.LOCK_FILE,
    retries: 2
    conda:
        "../../envs/study.yaml"
    log:
        "logs/download/{dataset}.log",
    script:
        "../scripts/download.py"


# The extracted folder is temporary: once every index and shard job that reads it is done,
# Snakemake deletes it (the verified archive stays; the full study's folders take GBs). A later
# change that re-reads the records extracts it again (docs/reruns.md); `--notemp` keeps it.
rule extract:
    input:
        rules.download.output,
    output:
        temp(directory("resources/raw/{dataset}")),
    conda:
        "../../envs/study.yaml"
    log:
        "logs/extract/{dataset}.log",
    script:
        "../scripts/extract.py"


# Phase 1, cheap and serial: the record list, labels and split from headers and label files,
# and which part each record goes to (the number of parts is the config's, datasets.<name>.parts).
rule index_dataset:
    input:
        root=dataset_root,
    output:
        csv="results/index/{dataset}.csv",
        meta="results/index/{dataset}.json",
    params:
        # scaling is applied by make_shard, not here (a change still re-runs the index once
        # the extracted folder is gone: the parts need it again, see extract)
        preprocess=index_preprocess_params,
        split=split_params,
        parts=shard_parts,
        on_bad_record=on_bad_record,
        records=records_params,
        code_version=data_code_version,
    conda:
        "../../envs/study.yaml"
    log:
        "logs/index_dataset/{dataset}.log",
    benchmark:
        "benchmarks/index_dataset/{dataset}.tsv"
    script:
        "../scripts/index.py"


# Phase 2, expensive and parallel: read and preprocess one part's records, streaming to HDF5.
rule make_shard:
    input:
        index=rules.index_dataset.output.csv,
        meta=rules.index_dataset.output.meta,
        root=dataset_root,
    output:
        shard="results/shards/{dataset}/part{part}.h5",
        quarantine="results/shards/{dataset}/part{part}.quarantine.csv",
    params:
        scaling=scaling_param,
        on_bad_record=on_bad_record,
        code_version=data_code_version,
    conda:
        "../../envs/study.yaml"
    log:
        "logs/make_shard/{dataset}/part{part}.log",
    benchmark:
        "benchmarks/make_shard/{dataset}/part{part}.tsv"
    script:
        "../scripts/make_shard.py"
