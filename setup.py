import os

from setuptools import find_packages, setup

with open(os.path.join("sb3_distill", "version.txt")) as file_handler:
    __version__ = file_handler.read().strip()

with open("README.md") as file_handler:
    long_description = file_handler.read()

# torch is pinned by scripts/setup.sh (run by both README commands and CI) before this package is installed.
# rl_zoo3 reads every Zoo-format config (sb3_distill.recipe), and it imports optuna (4.9: RetryHeartbeatStaleTrialCallback)
install_requires = [
    "rl_zoo3>=2.9.2,<3.0",
    "optuna>=4.9",
    "stable_baselines3>=2.9.2,<3.0",
    "sb3_contrib>=2.9.2,<3.0",
    "torch>=2.3",
    "gymnasium>=1.0",
    "numpy",
    "pyyaml",
    "matplotlib",
    "tqdm",
    "rich",
]

# Data folders of the repository, installed as sb3_distill/data/...: Zoo configs, shipped teachers, study settings
DATA_DIRS = {
    "sb3_distill.data.zoo_configs": "zoo_configs",
    "sb3_distill.data.zoo_configs.teachers": "zoo_configs/teachers",
    "sb3_distill.data.tuning": "tuning",
}
DATA_FILES = ["*.yml", "*.zip", "*.json", "*.py"]

extras = {
    # rl_zoo3's enjoy imports requests (for its Hub download) without declaring it. record_video/record_training:
    # moviepy writes the videos, pygame(-ce) draws classic control, record_training runs ffmpeg (the system's, else
    # imageio-ffmpeg's binary)
    "zoo": ["requests", "moviepy", "imageio-ffmpeg", "gymnasium[classic-control]"],
    "atari": ["ale-py>=0.10", "opencv-python"],
    "box2d": ["gymnasium[box2d]"],
    # scipy: Optuna's matplotlib contour plot. PostgreSQL storages: SQLAlchemy >= 2.1 opens postgresql:// URLs with
    # psycopg (3), SQLAlchemy 2.0 with psycopg2
    "tuning": ["scipy", "psycopg[binary]", "psycopg2-binary"],
    # rliable's IQM and stratified bootstrap CIs for the benchmarks; rliable 1.2 needs arch < 8, and arch 7.2 pandas < 3
    "benchmarks": ["rliable>=1.2", "arch>=7.2,<8", "pandas<3"],
    # sb3-distill export: torch.onnx.export's default (torch.export-based) exporter needs onnxscript; onnxruntime runs
    # the check and the timing. The versions tested with torch 2.13
    "export": ["onnx>=1.23", "onnxscript>=0.7", "onnxruntime>=1.32"],
    # MinAtar's games (MinAtar/Breakout-v1, ...) for sb3_distill.minatar; version 1.0.15 tested
    "minatar": ["minatar>=1.0.15"],
    # The Sphinx site in docs/ (scripts/build_docs.sh): Markdown pages through myst-parser, SB3's theme
    "docs": ["sphinx>=8", "sphinx_rtd_theme>=3", "myst-parser>=4"],
    "tests": [
        "pytest",
        "pandas",
        "tensorboard",
        "ruff",
        "mypy",
        "types-PyYAML",
        "psycopg[binary]",
        "psycopg2-binary",
        "minatar>=1.0.15",
        # the docs' browser test drives Debian's /usr/bin/chromium through /usr/bin/chromedriver
        "selenium>=4.20",
    ],
}
extras["all"] = sorted({requirement for group in extras.values() for requirement in group})

setup(
    name="sb3_distill",
    packages=[*find_packages(include=["sb3_distill", "sb3_distill.*"]), *DATA_DIRS],
    # The top-level data folders ship inside the package, where sb3_distill.config.project_data_dir finds them
    package_dir=DATA_DIRS,
    package_data={"sb3_distill": ["py.typed", "version.txt"], **{package: DATA_FILES for package in DATA_DIRS}},
    install_requires=install_requires,
    extras_require=extras,
    entry_points={"console_scripts": ["sb3-distill=sb3_distill.cli:main"]},
    description="Policy distillation into DQN students for Stable-Baselines3",
    long_description=long_description,
    long_description_content_type="text/markdown",
    version=__version__,
    python_requires=">=3.10",
    license="MIT",
)
