"""ecg-transfer: the study 'Transfer Learning in ECG Diagnosis: Is It Effective?' as a package.

All numerical and I/O logic of the workflow lives here, free of Snakemake, so that every step can
be used and tested on its own (e.g. from a notebook).
"""

__version__ = "0.1.0"
