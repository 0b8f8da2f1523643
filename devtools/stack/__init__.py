"""The local stack behind `make dev`: the backend running locally, WebSockets included.

`sam local` cannot serve WebSocket APIs; this runs the same handlers from the same
`template.yaml` with events shaped like API Gateway's, on moto's DynamoDB/Streams/SQS:

- `Stack`: everything in the current process (tests, benchmarks);
- `StackProcess`: the same as a subprocess (browser tests), ports reported back;
- `python -m devtools.stack`: what `make dev` runs (settings: `devtools.stack.config`).
"""

from devtools.stack.config import Limits
from devtools.stack.process import StackProcess
from devtools.stack.stack import Stack, StackError

__all__ = ["Limits", "Stack", "StackError", "StackProcess"]
