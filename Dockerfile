# mip6 container image: the home agent (and the other subcommands) on a small Debian runtime.
#
# In a registry-connected CI (Docker or podman), everything is built inside:
#   docker build -t mip6 .
# Here (no registry): scripts/container builds mip6 on the host with --static-swift-stdlib
# and a debootstrap'ed bookworm base, then runs
#   podman build --build-arg BUILD=prebuilt --build-arg PREBUILT=.build-container/prebuilt/mip6 \
#     --build-arg SWIFT_IMAGE=localhost/debian:bookworm-minbase \
#     --build-arg RUNTIME_IMAGE=localhost/debian:bookworm-minbase -t localhost/mip6:dev .
#
# Run it (see README): --privileged (or --cap-add BPF,NET_ADMIN,NET_RAW,PERFMON,SYS_ADMIN),
# the network namespace of the home link (--network host / ns:PATH), the host's bpffs:
#   docker run --privileged --network host -v /sys/fs/bpf:/sys/fs/bpf mip6 \
#     ha --interface eth0 --address 2001:db8:1::a --home-prefix 2001:db8:1::/64

# Build image: the official Swift image of the toolchain's Debian release (the runtime's).
ARG SWIFT_IMAGE=swift:6.3-bookworm
# Runtime image: any Debian 12 with apt (libbpf1 1.1 matches the build stage's libbpf-dev).
ARG RUNTIME_IMAGE=debian:bookworm-slim
# source: build mip6 in SWIFT_IMAGE; prebuilt: copy PREBUILT from the context (a binary
# built with --static-swift-stdlib on a Debian 12 host). BuildKit and buildah only build
# the stages the target needs, so with BUILD=prebuilt SWIFT_IMAGE is never pulled.
ARG BUILD=source

# ================================ build from source ================================
FROM ${SWIFT_IMAGE} AS build-source
# libbpf/libelf/zlib for Sources/CMip6; linux-libc-dev for the uapi headers bpf/*.bpf.c
# include (the BPFBuilder plugin compiles them with the toolchain's clang -target bpf).
RUN export DEBIAN_FRONTEND=noninteractive DEBCONF_NONINTERACTIVE_SEEN=true \
    && apt-get -q update \
    && apt-get -q install -y --no-install-recommends libbpf-dev libelf-dev zlib1g-dev linux-libc-dev \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /build
# Dependencies first: this layer is reused until Package.swift / Package.resolved change.
COPY ./Package.* ./
RUN swift package resolve $([ -f ./Package.resolved ] && echo --force-resolved-versions || true)
COPY . .
# The Swift runtime (stdlib, Foundation, Dispatch) linked in: the runtime image needs no
# Swift libraries, only libbpf, libelf, zlib and the C/C++ runtime Debian always has.
RUN swift build -c release --static-swift-stdlib --product mip6
WORKDIR /staging
RUN cp "$(swift build --package-path /build -c release --static-swift-stdlib --show-bin-path)/mip6" ./ \
    && strip ./mip6

# ================================ prebuilt on the host ================================
FROM scratch AS build-prebuilt
ARG PREBUILT=.build-container/prebuilt/mip6
COPY ${PREBUILT} /staging/mip6

# (`:-source` repeats the default: buildah 1.28, podman 4.3 on Debian 12, leaves the ARG
# default out when it works out which stages the target needs.)
FROM build-${BUILD:-source} AS build

# ==================================== runtime ====================================
FROM ${RUNTIME_IMAGE}
# libbpf1, libelf1, zlib1g: the loader (Sources/CMip6). Nothing else: the Swift runtime is
# linked in, and libc/libstdc++/libgcc_s are in every Debian image.
RUN export DEBIAN_FRONTEND=noninteractive DEBCONF_NONINTERACTIVE_SEEN=true \
    && apt-get -q update \
    && apt-get -q install -y --no-install-recommends libbpf1 libelf1 zlib1g \
    && apt-get clean \
    && rm -rf /var/lib/apt/lists/* /var/cache/apt/*.bin /var/log/apt /var/log/dpkg.log
COPY --from=build /staging/mip6 /usr/local/bin/mip6
# The smoke test of the image: fails the build if a library is missing.
RUN mip6 --version
# Runs as root, deliberately: the home agent loads and attaches XDP programs, pins maps,
# opens raw and packet sockets and writes sysctls (CAP_BPF, CAP_PERFMON, CAP_NET_ADMIN,
# CAP_NET_RAW, CAP_SYS_ADMIN for the bpffs mount), which a non-root user cannot hold
# without file capabilities that the usual runtimes drop anyway. Confine it with the
# runtime's capability set instead of --privileged where the platform allows.

# Metrics and health (`--http-listen`).
EXPOSE 9464
ENTRYPOINT ["mip6"]
CMD ["--help"]
