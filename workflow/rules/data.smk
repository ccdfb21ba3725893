# Data stages: (demo mirror) -> download -> extract -> make_shards.


rule make_demo_archive:
    output:
        DEMO_MIRROR + "/{dataset}.{fmt}",
    params:
        n_records=demo_records,
        seed=config.get("demo", {}).get("seed", 0),
        difficulty=config.get("demo", {}).get("difficulty", 1.0),
        code_version=CODE_VERSION,
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
    retries: 2
    conda:
        "../../envs/study.yaml"
    log:
        "logs/download/{dataset}.log",
    script:
        "../scripts/download.py"


rule extract:
    input:
        rules.download.output,
    output:
        directory("resources/raw/{dataset}"),
    conda:
        "../../envs/study.yaml"
    log:
        "logs/extract/{dataset}.log",
    script:
        "../scripts/extract.py"


rule make_shards:
    input:
        rules.extract.output,
    output:
        "results/shards/{dataset}.h5",
    params:
        preprocess=preprocess_params,
        split=split_params,
        code_version=CODE_VERSION,
    conda:
        "../../envs/study.yaml"
    log:
        "logs/make_shards/{dataset}.log",
    benchmark:
        "benchmarks/make_shards/{dataset}.tsv"
    script:
        "../scripts/make_shards.py"
