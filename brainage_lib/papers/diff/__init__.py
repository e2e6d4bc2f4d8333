"""DIFF: a diffusion autoencoder's semantic latent for brain age on clinical-grade scans (2D); notebook 02_diff."""
from brainage_lib.registry import Paper

W = "brainage_lib.papers.diff"
PAPER = Paper(
    name="diff", short="DIFF", title="Semi-supervised diffusion model for brain age; ALS survival",
    notebook="02_diff",
    transforms={"diff": f"{W}.transforms:DIFFSlice"},
    recipe=f"{W}.recipe:RECIPE",
    architectures={
        "DeepBrainNet2D": ("brainage_lib.papers.diff.baselines:DeepBrainNet2D", "brainage_lib.papers.diff.baselines:SliceCNNConfig"),
        "DenseNet121-2D": ("brainage_lib.papers.diff.baselines:densenet121_2d", None),
        "DiffAE": ("brainage_lib.papers.diff.diffae:DiffAE", "brainage_lib.papers.diff.diffae:DiffAEConfig"),
    },
    presets=f"{W}.presets:PRESETS",
    bench=f"{W}.bench:bench_diff",
    gpu_stages=f"{W}.bench:gpu_stages",
    claims=f"{W}.claims:claims",
    deviations=f"{W}.deviations:DEVIATIONS",
    numbers=f"{W}.paper",
)
