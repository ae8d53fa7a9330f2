# One image for the operator and the runtime: `sluice operator` and `sluice run -f …`.
# Build: docker build -t sluice:0.1.0 .

FROM python:3.11.11-slim-bookworm AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY operator ./operator
COPY runtime ./runtime
COPY cli ./cli
# Wheels only: confluent-kafka, orjson and pydantic-core ship manylinux wheels, so no stage
# needs a compiler.
RUN pip wheel --no-cache-dir --wheel-dir /wheels .
# Installed here and copied whole: no bytecode (it would add some 60 MB;
# PYTHONDONTWRITEBYTECODE keeps it so at run time), and no debug symbols in the compiled
# extensions (uvloop's alone are 12 of its 14 MB); the libraries wheels bundle (*.libs/)
# are left as they came. As scripts/image.sh does.
RUN apt-get update && apt-get install -y --no-install-recommends binutils \
    && pip install --no-cache-dir --no-compile --no-index --find-links /wheels --prefix /install sluice \
    && find /install -path '*-packages/*' -name '*.so' -not -path '*.libs/*' \
       -exec strip --strip-unneeded {} +

FROM python:3.11.11-slim-bookworm
RUN useradd --uid 65532 --no-create-home --shell /usr/sbin/nologin sluice
COPY --from=build /install /usr/local
USER 65532:65532
ENV PYTHONUNBUFFERED=1 PYTHONDONTWRITEBYTECODE=1
EXPOSE 9090
ENTRYPOINT ["sluice"]
CMD ["--help"]
