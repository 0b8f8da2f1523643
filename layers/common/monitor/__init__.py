"""The reference application, declared the way a user of this project declares theirs.

The concurrency monitor from the Django Channels talk this project started from:

- `users`: a live count of signed-in users;
- `documents` and `document`: who is viewing, editing or reviewing which document (the
  presence rooms are documents, the states the phases);
- `notifications`: live data binding of the documents table, whoever writes it;
- `comments`: a document's comments, live, written through the socket too.

`application(environment)` is what the engine's runtime calls (`REALTIME_APP=monitor`).
"""

from monitor.app import application

__all__ = ["application"]
