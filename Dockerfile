# The vworkspace-operator image (image/README.md).
#
#   docker build -t vworkspace-operator:0.1.0 \
#     --build-arg VWO_GIT_REVISION="$(git rev-parse HEAD)" --build-arg VWO_VERSION=0.1.0 .
#
# Stages: `build` compiles the operator (a stripped release binary), `binary` is where the runtime stage takes
# it from (the `build` stage unless BINARY_IMAGE names an image holding /vworkspace-operator, which is how
# image/build-local.sh builds this runtime stage from a prebuilt binary without the Rust image), `runtime` is
# the image (the last stage, so the default target).

# Pinned tags; pin digests too (`rust:1.95-bookworm@sha256:...`) where builds must be reproducible.
ARG RUST_IMAGE=rust:1.95-bookworm
ARG BASE_IMAGE=debian:12.15-slim
ARG BINARY_IMAGE=build

FROM ${RUST_IMAGE} AS build
WORKDIR /src
# Crates first, in a layer of their own: a source change does not download them again (cargo reads the
# [[bench]] files when it loads the manifest, src/ it does not; the workspace's core crate is a manifest here).
COPY Cargo.toml Cargo.lock ./
COPY crates/core/Cargo.toml ./crates/core/
COPY benches ./benches
RUN cargo fetch --locked
COPY . .
# The revision `--version` prints (build.rs; the build context has no .git). Empty: "unknown".
ARG VWO_GIT_REVISION=
ENV VWO_GIT_REVISION=${VWO_GIT_REVISION}
# The release profile keeps line tables for local backtraces; the image's binary has neither them nor symbols
# (about 37 MB instead of 250 MB).
RUN cargo build --release --locked --bin vworkspace-operator \
        --config 'profile.release.debug=false' --config 'profile.release.strip=true' \
    && install -D -m 0755 target/release/vworkspace-operator /vworkspace-operator \
    && /vworkspace-operator --version

FROM ${BINARY_IMAGE} AS binary

FROM ${BASE_IMAGE} AS runtime
# What the binary needs at run time besides libc: git (notes are pushed with `git push`, `git gc --auto`
# keeps the notes repository packed, `demo` runs `git log`), openssh-client (ssh:// and scp-style remotes),
# ca-certificates (HTTPS remotes, through git's libcurl).
# The git package depends on perl, but the git commands the operator runs are built into git (C): the
# files of perl's libraries (libperl, perl-modules: 47 MB) are not unpacked, with the dpkg path-exclude
# mechanism that slim images use for docs (the packages are installed; perl-base's own /usr/bin/perl stays).
# Docs, man pages and translations go in the same layer (debian:*-slim already excludes most of them).
# The user and group 65532 (`nonroot`) own the state directory, which is also HOME (git and ssh look
# there); with a read-only root filesystem the Deployment mounts emptyDirs there and at /tmp.
RUN set -eux; \
    export DEBIAN_FRONTEND=noninteractive; \
    printf '%s\n' 'path-exclude=/usr/share/perl/*' 'path-exclude=/usr/lib/*/perl/*' \
        'path-exclude=/usr/lib/*/libperl.so*' > /etc/dpkg/dpkg.cfg.d/zz-vworkspace-no-perl-libs; \
    apt-get update; \
    apt-get install -y --no-install-recommends ca-certificates git openssh-client; \
    rm /etc/dpkg/dpkg.cfg.d/zz-vworkspace-no-perl-libs; \
    apt-get clean; \
    rm -rf /var/lib/apt/lists/* /var/cache/apt/*.bin /var/cache/debconf/*-old /var/log/apt/* \
        /var/log/dpkg.log /var/log/alternatives.log /usr/share/man/* /usr/share/info/*; \
    if [ -d /usr/share/doc ]; then \
        find /usr/share/doc -mindepth 1 ! -type d ! -name copyright -delete; \
        find /usr/share/doc -mindepth 1 -type d -empty -delete; \
    fi; \
    if [ -d /usr/share/locale ]; then \
        find /usr/share/locale -mindepth 1 -maxdepth 1 ! -name locale.alias -exec rm -rf {} +; \
    fi; \
    groupadd --system --gid 65532 nonroot; \
    useradd --system --no-log-init --uid 65532 --gid 65532 --home-dir /var/lib/vworkspace-operator --no-create-home \
        --shell /usr/sbin/nologin nonroot; \
    install -d -o 65532 -g 65532 -m 0750 /var/lib/vworkspace-operator; \
    git --version; ssh -V
COPY --from=binary /vworkspace-operator /usr/local/bin/vworkspace-operator
ENV HOME=/var/lib/vworkspace-operator
WORKDIR /var/lib/vworkspace-operator
USER 65532:65532
# The labels' values: the version (Cargo.toml), the commit and the source repository (pass
# --build-arg VWO_SOURCE=<where your clone lives>; empty otherwise). Declared after the RUN: a new revision does
# not invalidate its cache.
ARG VWO_VERSION=0.1.0
ARG VWO_GIT_REVISION=unknown
ARG VWO_SOURCE=
LABEL org.opencontainers.image.title="vworkspace-operator" \
      org.opencontainers.image.description="GitOps operator for vWorkspace: acts only on signed, verified intent and writes its audit trail to Git" \
      org.opencontainers.image.source="${VWO_SOURCE}" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.version="${VWO_VERSION}" \
      org.opencontainers.image.revision="${VWO_GIT_REVISION}"
ENTRYPOINT ["/usr/local/bin/vworkspace-operator"]
CMD ["run"]
