# Aggregation: F1 tables and convergence curves from every training job's metrics.csv, and the
# study's answer (results): Δ with paired bootstrap intervals, convergence, CNN vs RNN, the size
# axis and each claim's verdict, from the saved predictions. Each figure and table is wrapped
# in report() with a caption from workflow/report/, so `snakemake --report results/report.html`
# explains what it shows.


rule aggregate:
    input:
        training_metrics(),
    output:
        csv=report(
            "results/tables/f1.csv",
            caption="../report/f1_csv.rst",
            category="Tables",
        ),
        md=report(
            "results/tables/f1.md",
            caption="../report/f1_md.rst",
            category="Tables",
        ),
    params:
        jobs=training_jobs(),
        arch_order=ARCHS,
        code_version=CODE_VERSION["report"],
    conda:
        "../../envs/study.yaml"
    log:
        "logs/aggregate/aggregate.log",
    script:
        "../scripts/aggregate.py"


rule plot_curves:
    input:
        downstream_metrics,
    output:
        report(
            "results/figures/curves_{downstream}.png",
            caption="../report/curves.rst",
            category="Convergence curves",
            labels={"downstream": "{downstream}"},
        ),
    params:
        jobs=downstream_jobs,
        arch_order=ARCHS,
        # only plot_curves carries the plotting options: changing one redraws the figures alone
        plots=plot_params(),
        code_version=CODE_VERSION["report"],
    conda:
        "../../envs/study.yaml"
    log:
        "logs/plot_curves/{downstream}.log",
    script:
        "../scripts/plot_curves.py"


rule results:
    input:
        result_inputs(),
        beyond_inputs(),
    output:
        **result_outputs(),
    params:
        jobs=result_jobs(),
        melep=MELEP,
        melep_jobs=melep_jobs(),
        robustness=ROBUSTNESS,
        robustness_files=robustness_files(),
        kinds=KINDS,
        families=families(),
        arch_order=ARCHS,
        stats=dict(config["results"]),
        plots=plot_params(),
        code_version=CODE_VERSION["results"],
    conda:
        "../../envs/study.yaml"
    log:
        "logs/results/results.log",
    benchmark:
        "benchmarks/results/results.tsv"
    script:
        "../scripts/results.py"
