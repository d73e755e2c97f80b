# ferkit serve on the CPU: the web page and JSON API of docs/serve.md, listening on 0.0.0.0:8000.
#
#   docker build -t ferkit .
#   docker run --rm -p 8000:8000 -e FERKIT_SERVE_TOKEN="$(python3 -c 'import secrets; print(secrets.token_urlsafe())')" ferkit
#
# ferkit serve refuses to listen beyond loopback without a token, so the container does not
# start without FERKIT_SERVE_TOKEN (at least 16 characters); pass it with -e, never in the
# image. Another model or option: give the whole command after the image name, e.g.
#   docker run ... ferkit ferkit serve --host 0.0.0.0 --port 8000 --model affectnet
FROM python:3.11-slim

ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1

# torch first, from its CPU wheel index, so that nothing later resolves a CUDA build. Where
# only PyPI is reachable: docker build --build-arg TORCH_INDEX=https://pypi.org/simple .
# (on Linux x86-64, PyPI's torch pulls the CUDA libraries: a much larger image, same results).
ARG TORCH_INDEX=https://download.pytorch.org/whl/cpu
RUN pip install --index-url "${TORCH_INDEX}" torch==2.13.0

# Only what the package needs (see .dockerignore); installed, not editable, so the shipped
# weights live in site-packages, owned by root and read-only for the server's user.
WORKDIR /src
COPY pyproject.toml README.md ./
COPY src ./src
RUN pip install '.[serve,onnx]' && rm -rf /src

RUN useradd --create-home --uid 10001 ferkit
USER ferkit
WORKDIR /home/ferkit

EXPOSE 8000

# /api/health needs the token like every API route; the check sends it from the environment.
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request as u; u.urlopen(u.Request('http://127.0.0.1:8000/api/health', headers={'Authorization': 'Bearer ' + os.environ.get('FERKIT_SERVE_TOKEN', '')}), timeout=4)"]

CMD ["ferkit", "serve", "--host", "0.0.0.0", "--port", "8000"]
