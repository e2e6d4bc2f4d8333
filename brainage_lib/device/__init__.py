"""The device bundle: one folder that measures a GPU node with no package index (``make device-bundle``).

``bundle`` builds ``build/device/`` (the project's wheel, the wheels the node lacks, the notebooks
and ``run.sh``); ``driver`` is what ``run.sh`` runs there; ``precision`` compares bf16 with fp32.
"""
