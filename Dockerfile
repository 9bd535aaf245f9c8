# The suite as an image: the wheel built from this checkout, installed into python:3.11-slim, judging the embedded
# reference backend at the basic level by default (docs/ci.md, "Installing the suite as a tool").
#
#   docker build -t ib-resilience .
#   docker run --rm -v "$PWD/reports:/work/reports" --user "$(id -u):$(id -g)" ib-resilience
#   docker run --rm ib-resilience run --level standard          # any `ib-resilience` command line
#
# tests/spec/test_install.py checks what this file names and runs the same steps in a fresh venv.

FROM python:3.11-slim AS build
WORKDIR /src
COPY pyproject.toml setup.py MANIFEST.in README.md LICENSE ./
COPY support ./support
COPY features ./features
COPY ibtargets ./ibtargets
COPY ibreport ./ibreport
COPY ibresilience ./ibresilience
RUN python -m pip install --no-cache-dir build && python -m build --wheel --outdir /dist

FROM python:3.11-slim
ENV PYTHONUNBUFFERED=1 PIP_DISABLE_PIP_VERSION_CHECK=1 ALLURE_NO_ANALYTICS=true
COPY --from=build /dist/ /dist/
RUN python -m pip install --no-cache-dir /dist/*.whl && rm -rf /dist \
    && useradd --create-home --uid 1000 runner && mkdir /work && chown runner /work
USER runner
WORKDIR /work
# Results go to /work/reports (mount it to keep them); the Allure HTML needs an `allure` CLI (and Java) in the
# image or ALLURE=/path/to/allure, else `--report` writes the Markdown and says how to render the HTML later.
ENTRYPOINT ["ib-resilience"]
CMD ["run", "--level", "basic"]
