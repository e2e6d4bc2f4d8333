"""LSTM: 2D-ResNet18+LSTM vs 3D-ResNet18 for brain age in children (0-22 y); notebook 03_lstm."""
from brainage_lib.registry import Paper

W = "brainage_lib.papers.lstm"
PAPER = Paper(
    name="lstm", short="LSTM", title="2D-ResNet18+LSTM vs 3D-ResNet18 on children's MRI",
    notebook="03_lstm",
    transforms={"lstm": f"{W}.transforms:LSTMSlices", "atlas": f"{W}.transforms:AtlasVolume"},
    recipe=f"{W}.recipe:RECIPE",
    architectures={
        "ResNet3D": ("brainage_lib.papers.lstm.resnet3d:ResNet3D", "brainage_lib.papers.lstm.resnet3d:ResNet3DConfig"),
        "ResNetLSTM": ("brainage_lib.papers.lstm.resnet_lstm:ResNetLSTM", "brainage_lib.papers.lstm.resnet_lstm:ResNetLSTMConfig"),
    },
    presets=f"{W}.presets:PRESETS",
    bench=f"{W}.bench:bench_lstm",
    gpu_stages=f"{W}.bench:gpu_stages",
    claims=f"{W}.claims:claims",
    deviations=f"{W}.deviations:DEVIATIONS",
    numbers=f"{W}.paper",
)
