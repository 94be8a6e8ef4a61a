# One image for every Bookstore binary (auth-service, books-service, gateway,
# and the all-in-one `bookstore`, which also provides `bookstore probe` for
# healthchecks). The compose file and the Kubernetes manifests pick the binary
# with `command`.

FROM rust:1-bookworm AS build
WORKDIR /src
COPY . .
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked -p auth-service -p books-service -p gateway -p bookstore \
 && mkdir -p /out \
 && cp target/release/auth-service target/release/books-service target/release/gateway target/release/bookstore /out/

FROM debian:bookworm-slim
RUN useradd --system --uid 10001 --user-group --home-dir /var/lib/bookstore --create-home bookstore
COPY --from=build /out/ /usr/local/bin/
USER 10001:10001
WORKDIR /var/lib/bookstore
# The all-in-one stack on SQLite in /var/lib/bookstore/data by default.
ENV BOOKSTORE_GATEWAY_ADDR=0.0.0.0:5000
EXPOSE 5000 50051 50052
CMD ["bookstore"]
