# The nlfs image: what every Argo pod of workflows/ runs, and `docker run IMAGE evaluate ...`.
#   docker build -t REGISTRY/nlfs:0.1.0 . && docker push REGISTRY/nlfs:0.1.0   (docs/kubernetes.md)
#
# Base: PyTorch 2.5.1 with CUDA 12.4 and cuDNN 9, runtime flavour (no compilers), pinned to an
# exact release tag. For a reproducible production build pin the digest too: look it up once with
# `docker buildx imagetools inspect pytorch/pytorch:2.5.1-cuda12.4-cudnn9-runtime` and write
# FROM pytorch/pytorch:2.5.1-cuda12.4-cudnn9-runtime@sha256:<digest> (not done here: the
# project's machines cannot reach a registry to read the digest, and an unverified one is worse).
FROM pytorch/pytorch:2.5.1-cuda12.4-cudnn9-runtime

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    HOME=/home/nlfs \
    NLFS_CACHE=/cache \
    MPLCONFIGDIR=/home/nlfs/.config/matplotlib

WORKDIR /opt/nlfs
COPY pyproject.toml README.md ./
COPY nlfs ./nlfs
# The package without dev extras. pyproject ranges torch (>=2.4) and torchvision, so pip keeps
# the base image's CUDA builds instead of downloading CPU wheels.
RUN pip install --no-cache-dir . \
 && python -c "import torch, nlfs; print('torch', torch.__version__, 'nlfs', nlfs.__version__)"

# A non-root user with a fixed numeric uid/gid (Kubernetes runAsNonRoot checks a numeric USER),
# a writable home and the dataset cache. In the pods the root filesystem is read-only and emptyDirs
# are mounted over everything nlfs writes: $HOME (torch's and matplotlib's caches), /cache, /tmp.
RUN groupadd --gid 1000 nlfs \
 && useradd --uid 1000 --gid 1000 --create-home --home-dir /home/nlfs --shell /usr/sbin/nologin nlfs \
 && mkdir -p /cache /work \
 && chown 1000:1000 /cache /work
USER 1000:1000
WORKDIR /work

ENTRYPOINT ["nlfs"]
CMD ["--help"]
