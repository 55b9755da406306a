# One image for the API and the worker (the command picks which).
FROM python:3.11-slim
WORKDIR /app
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1
COPY pyproject.toml README.md ./
COPY rules rules
COPY payloads payloads
COPY workflows workflows
COPY activities activities
COPY db db
COPY mail mail
COPY api api
COPY licensing licensing
COPY worker.py alembic.ini ./
# Bytecode for the sources the process runs from (/app): the worker's sandbox imports the workflow modules
# afresh for every workflow it starts, and without it would compile them each time.
RUN pip install --no-cache-dir . && python -m compileall -q rules payloads workflows activities db mail api licensing worker.py
EXPOSE 8000
CMD ["uvicorn", "api.main:app", "--host", "0.0.0.0", "--port", "8000"]
