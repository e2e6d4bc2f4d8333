"""Raw T1w scans to the MNI-space cohort folders the notebooks read (``brainage preprocess``).

``recipes`` (one per paper), ``pipeline`` (one scan: checks, N4, deepbet, ANTs registration),
``qc`` (numbers, flags, qc.tsv and qc.html), ``outputs`` (file names, atomic writes),
``run`` (a cohort: parallel, resumable, failures reported per scan).
"""
