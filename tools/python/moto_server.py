"""moto server, with DynamoDB requests made atomic.

moto's server handles requests on threads and its DynamoDB backend has no lock, so two
concurrent conditional writes to one item can both pass their condition (seen here: two workers
both acquired one lease). DynamoDB guarantees that a conditional write is atomic for its item.
This launcher keeps moto as it is and serializes DynamoDB requests (recognized by their
X-Amz-Target header), which is a stronger guarantee than DynamoDB's per-item one, never weaker.
Other services keep running concurrently, so SQS long polls do not block anything.

Usage: python moto_server.py [moto_server arguments]
"""

import threading

import moto.server
from moto.server import DomainDispatcherApplication

_dynamodb_lock = threading.Lock()


class AtomicDynamoDB(DomainDispatcherApplication):
    def __call__(self, environ, start_response):
        target = environ.get("HTTP_X_AMZ_TARGET", "")
        if target.startswith("DynamoDB_"):
            with _dynamodb_lock:
                # Consume the response inside the lock: the work happens while it is produced.
                return list(super().__call__(environ, start_response))
        return super().__call__(environ, start_response)


moto.server.DomainDispatcherApplication = AtomicDynamoDB

if __name__ == "__main__":
    moto.server.main()
