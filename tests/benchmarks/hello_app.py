"""A bare Flask hello-world, the baseline of ``api_rps``.

``gunicorn tests.benchmarks.hello_app:app``.

It answers a small JSON body like the executor's routes do, with nothing else: no
authentication, no upstream call, no run store.
"""

from flask import Flask, jsonify

app = Flask(__name__)


@app.get("/")
def hello() -> object:
    return jsonify({"hello": "world"})
