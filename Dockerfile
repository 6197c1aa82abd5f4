FROM python:3.11-slim
WORKDIR /app
COPY pyproject.toml README.md ./
COPY marketdata ./marketdata
RUN pip install --no-cache-dir . && useradd --system marketdata
COPY config.yaml ./
USER marketdata
EXPOSE 9090 9091 8765
ENTRYPOINT ["marketdata"]
CMD ["run", "--config", "/app/config.yaml"]
