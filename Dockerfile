# One image, one binary: the `bookstore` launcher. Its subcommands are the
# services (`bookstore auth-service`, `bookstore books-service`, `bookstore
# gateway`, as the compose file and the Kubernetes manifests run them), the
# admin commands, and `bookstore probe` for healthchecks; with no command it
# runs the whole stack on SQLite in the volume /var/lib/bookstore/data:
#
#   docker run -p 127.0.0.1:5000:5000 bookstore
#
# Needs BuildKit for its cache mounts (Docker 23+, or DOCKER_BUILDKIT=1).

FROM rust:1-bookworm AS build
WORKDIR /src
COPY . .
# The cache mounts keep downloaded crates and compiled dependencies from one
# build to the next. The `container` profile is release without debug info,
# stripped (Cargo.toml): the binary is a fifth of the release build's size.
RUN --mount=type=cache,id=bookstore-cargo-registry,target=/usr/local/cargo/registry \
    --mount=type=cache,id=bookstore-target,target=/src/target \
    cargo build --profile container --locked -p bookstore \
 && install -D -m 0755 target/container/bookstore /rootfs/usr/local/bin/bookstore

# The runtime's whole filesystem, distroless-style: the binary, the C
# libraries it links (its TLS is rustls, inside the binary; no other system
# library), dash as /bin/sh for one-line jobs (the compose file's key
# initialisation), and a non-root user owning the places it writes: the
# all-in-one's SQLite files and keys (data/), and the signing key, service
# token and TLS certificates a compose deployment shares (keys/, service/,
# tls/: a new named volume takes its owner from the image's directory).
# Nothing else is written, so the root filesystem can be read-only.
# A Debian base would add 75-117 MB of packages nothing here uses.
RUN mkdir -p /rootfs/bin /rootfs/etc /rootfs/tmp /rootfs/var/lib/bookstore/data /rootfs/var/lib/bookstore/keys \
             /rootfs/var/lib/bookstore/service /rootfs/var/lib/bookstore/tls \
 && cp /bin/dash /rootfs/bin/sh \
 && for lib in $(ldd /rootfs/usr/local/bin/bookstore /bin/dash \
                  | awk '$2 == "=>" && $3 ~ /^\// { print $3 } $1 ~ /^\/.*[^:]$/ { print $1 }' | sort -u); do \
      cp -L --parents "$lib" /rootfs; done \
 && printf 'root:x:0:0:root:/root:/bin/sh\nbookstore:x:10001:10001::/var/lib/bookstore:/bin/sh\n' > /rootfs/etc/passwd \
 && printf 'root:x:0:\nbookstore:x:10001:\n' > /rootfs/etc/group \
 && printf 'hosts: files dns\n' > /rootfs/etc/nsswitch.conf \
 && chmod 1777 /rootfs/tmp \
 && chown -R 10001:10001 /rootfs/var/lib/bookstore \
 && chmod -R 0750 /rootfs/var/lib/bookstore

FROM scratch
COPY --from=build /rootfs/ /
USER 10001:10001
WORKDIR /var/lib/bookstore
ENV PATH=/usr/local/bin:/bin \
    BOOKSTORE_DATA_DIR=/var/lib/bookstore/data \
    BOOKSTORE_GATEWAY_ADDR=0.0.0.0:5000 \
    BOOKSTORE_AUTH_ADDR=0.0.0.0:50051 \
    BOOKSTORE_BOOKS_ADDR=0.0.0.0:50052
VOLUME /var/lib/bookstore/data
EXPOSE 5000 50051 50052
# For the all-in-one; the compose file gives each service its own.
HEALTHCHECK --interval=5s --timeout=4s --retries=10 CMD ["bookstore", "probe", "http://127.0.0.1:5000/readyz"]
CMD ["bookstore"]
