# One image for every Pledgewatch process (edge, ingest, API, workers, simulator).
# Pinned to the Debian release and Python minor the project is tested on (bookworm, 3.11).
FROM python:3.11-slim-bookworm
RUN apt-get update && apt-get install -y --no-install-recommends libgl1 libglib2.0-0 nodejs npm \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /app
COPY . /app
RUN pip install --no-cache-dir . \
    && if [ -f cloud/web/package.json ]; then npm ci --prefix cloud/web --omit=dev; fi \
    && find cloud/web/node_modules/@expo-google-fonts -name '*.ttf' \
       ! -name NotoSansSC_400Regular.ttf -delete  # the receipt font: Regular only
ENV PYTHONUNBUFFERED=1
