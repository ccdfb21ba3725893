# Aggregation: F1 tables and convergence curves from every training job's metrics.csv.


rule aggregate:
    input:
        training_metrics(),
    output:
        csv=report("results/tables/f1.csv", category="Tables"),
        md=report("results/tables/f1.md", category="Tables"),
    params:
        jobs=training_jobs(),
        code_version=CODE_VERSION["report"],
    conda:
        "../../envs/study.yaml"
    log:
        "logs/aggregate/aggregate.log",
    script:
        "../scripts/aggregate.py"


rule plot_curves:
    input:
        training_metrics(),
    output:
        report(
            expand("results/figures/curves_{downstream}.png", downstream=DOWNSTREAM),
            category="Convergence curves",
        ),
    params:
        jobs=training_jobs(),
        # only plot_curves carries the plotting options: changing one redraws the figures alone
        plots=plot_params(),
        code_version=CODE_VERSION["report"],
    conda:
        "../../envs/study.yaml"
    log:
        "logs/plot_curves/plot_curves.log",
    script:
        "../scripts/plot_curves.py"
