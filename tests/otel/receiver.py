"""A stand-in OTLP/HTTP collector for CI: records each POST's path, size and content type."""
import http.server
import sys

LOG, PORT = sys.argv[1], int(sys.argv[2])


class Receiver(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        with open(LOG, "a") as log:
            log.write(f"{self.path} {len(body)} {self.headers.get('Content-Type')}\n")
        self.send_response(200)
        self.send_header("Content-Type", "application/x-protobuf")
        self.end_headers()

    def log_message(self, *args):
        pass


http.server.HTTPServer(("127.0.0.1", PORT), Receiver).serve_forever()
