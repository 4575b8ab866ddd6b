"""HTTP servers a Runner can own: Werkzeug in a thread, gunicorn in a child process."""

from __future__ import annotations

import logging
import multiprocessing
import multiprocessing.connection
import threading
import typing as t

from werkzeug.serving import BaseWSGIServer, make_server

if t.TYPE_CHECKING:
    from _typeshed.wsgi import WSGIApplication

log = logging.getLogger(__name__)


class ServerStartError(OSError):
    """The server could not listen (port in use, bad address, child process died)."""


class WerkzeugServer:
    """Werkzeug's threaded server in a background thread of this process."""

    def __init__(self, app: WSGIApplication, host: str, port: int) -> None:
        try:
            # Binds now, in the caller's thread; port 0 picks a free port.
            self._server: BaseWSGIServer = make_server(host, port, app, threaded=True)
        except SystemExit as error:  # Werkzeug prints the OSError, then calls sys.exit(1)
            raise ServerStartError(f"Could not listen on {host}:{port}") from error
        except OSError as error:
            raise ServerStartError(f"Could not listen on {host}:{port}: {error}") from error
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.1},  # shutdown() latency is at most this
            name="executor-http",
            daemon=True,
        )

    @property
    def port(self) -> int:
        return self._server.port

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout: float | None = 5.0) -> None:
        if self._thread.is_alive():
            self._server.shutdown()  # never from a request handler of this server
            self._thread.join(timeout)
        self._server.server_close()


def _gunicorn_child(
    config: dict[str, t.Any],
    options: dict[str, t.Any],
    ready: multiprocessing.connection.Connection,
) -> None:
    """Entry point of the gunicorn child process (module level so ``spawn`` can import it)."""
    from gunicorn.app.base import BaseApplication

    from executor.app import create_app
    from executor.extension import executor_state, runner_of
    from executor.logs import configure_logging

    def when_ready(server: t.Any) -> None:  # in the arbiter, after bind
        ready.send(server.LISTENERS[0].getsockname()[1])
        ready.close()

    def post_worker_init(worker: t.Any) -> None:
        runner_of(worker.wsgi).start()  # each worker executes the triggers it serves

    def worker_exit(server: t.Any, worker: t.Any) -> None:
        runner_of(worker.wsgi).stop()

    settings = {
        **options,
        "when_ready": when_ready,
        "post_worker_init": post_worker_init,
        "worker_exit": worker_exit,
    }

    class Application(BaseApplication):  # type: ignore[misc]
        def load_config(self) -> None:
            for key, value in settings.items():
                if key in self.cfg.settings and value is not None:
                    self.cfg.set(key, value)

        def load(self) -> t.Any:
            app = create_app(config)
            settings = executor_state(app).settings
            configure_logging(settings.log_level, settings.log_format)
            return app

    Application().run()


class GunicornServer:
    """gunicorn in a child process (its arbiter needs a main thread); stopped with SIGTERM."""

    def __init__(
        self,
        config: dict[str, t.Any],
        host: str,
        port: int,
        *,
        workers: int,
        graceful_timeout_s: float,
    ) -> None:
        ctx = multiprocessing.get_context("spawn")  # never fork a process that runs threads
        self._ready, child_end = ctx.Pipe(duplex=False)
        options = {
            "bind": f"{host}:{port}",
            "workers": workers,
            "worker_class": "gthread",
            "threads": 4,
            "graceful_timeout": graceful_timeout_s,
            "control_socket_disable": True,
            "accesslog": None,
        }
        self._address = f"{host}:{port}"
        self._graceful_timeout_s = graceful_timeout_s
        self._process = ctx.Process(
            target=_gunicorn_child,
            args=(config, options, child_end),
            name="executor-gunicorn",
            daemon=False,
        )
        self.port: int | None = None

    def start(self, timeout: float = 60.0) -> None:
        self._process.start()
        ready = multiprocessing.connection.wait([self._ready, self._process.sentinel], timeout)
        if self._ready in ready:
            try:
                self.port = int(self._ready.recv())
                return
            except EOFError:
                pass
        self.stop(timeout=5)
        raise ServerStartError(f"gunicorn could not listen on {self._address}")

    def stop(self, timeout: float | None = None) -> None:
        if timeout is None:
            timeout = self._graceful_timeout_s + 5
        if self._process.is_alive():
            self._process.terminate()  # SIGTERM: graceful; workers drain their runners
        self._process.join(timeout)
        if self._process.is_alive():
            log.error("gunicorn did not stop in %.0f s — killing it", timeout)
            self._process.kill()
            self._process.join()
        self._ready.close()
