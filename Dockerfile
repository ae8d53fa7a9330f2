# One image for the operator and the runtime: `sluice operator` and `sluice run -f …`.
# Build: docker build -t sluice:0.1.0 .

FROM python:3.11.11-slim-bookworm AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY operator ./operator
COPY runtime ./runtime
COPY cli ./cli
# Wheels only: confluent-kafka, orjson and pydantic-core ship manylinux wheels, so the final
# stage needs no compiler.
RUN pip wheel --no-cache-dir --wheel-dir /wheels .

FROM python:3.11.11-slim-bookworm
RUN useradd --uid 65532 --no-create-home --shell /usr/sbin/nologin sluice
COPY --from=build /wheels /wheels
# No bytecode: it would add some 60 MB; PYTHONDONTWRITEBYTECODE keeps it so at run time.
RUN pip install --no-cache-dir --no-compile --no-index --find-links /wheels sluice && rm -rf /wheels
USER 65532:65532
ENV PYTHONUNBUFFERED=1 PYTHONDONTWRITEBYTECODE=1
EXPOSE 9090
ENTRYPOINT ["sluice"]
CMD ["--help"]
