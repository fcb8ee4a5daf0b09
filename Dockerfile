# One image for both services; the command selects which: `xerolink-mapper` (the default) or
# `xerolink-poster`. Build: docker build -t xerolink:0.1.0 .
# Both stages use the same pinned base so the virtualenv's interpreter path stays valid.

FROM python:3.11-slim-bookworm AS build
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1
WORKDIR /src
# Every dependency ships manylinux wheels (grpcio, psycopg[binary], cryptography), so no
# compiler is needed even here.
RUN python -m venv /opt/xerolink
COPY pyproject.toml README.md ./
COPY gen ./gen
COPY services ./services
RUN /opt/xerolink/bin/pip install --no-compile . \
    && /opt/xerolink/bin/python -m compileall -q /opt/xerolink/lib \
    && /opt/xerolink/bin/pip uninstall -y pip setuptools wheel

FROM python:3.11-slim-bookworm AS runtime
# A fixed numeric user, matching runAsUser in k8s/, so runAsNonRoot can be verified.
RUN groupadd --system --gid 10001 xerolink \
    && useradd --system --uid 10001 --gid 10001 --no-create-home --home-dir /nonexistent \
       --shell /usr/sbin/nologin xerolink
COPY --from=build /opt/xerolink /opt/xerolink
ENV PATH=/opt/xerolink/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1
WORKDIR /tmp
USER 10001:10001
# mapper, poster (gRPC). The servers listen on loopback unless told otherwise; a container is
# reached through its network interface, so the image listens on all of them. Beyond loopback a
# server starts only with a callers file (XEROLINK_CALLERS_FILE, as k8s/ mounts one) or the
# explicit XEROLINK_ALLOW_UNAUTHENTICATED=1, so `docker run` without either refuses to start.
ENV XEROLINK_MAPPER_ADDRESS=0.0.0.0:50061 \
    XEROLINK_POSTER_ADDRESS=0.0.0.0:50062
EXPOSE 50061 50062
CMD ["xerolink-mapper"]
