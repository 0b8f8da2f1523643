"""realtime: the shared library of serverless-realtime (deployed as a SAM layer).

A WebSocket backend on API Gateway + Lambda + DynamoDB in the spirit of Django Channels:
groups, presence, a live user counter and data-binding notifications over one socket.
The modules each hold one thing: `config` (settings from the environment), `keys`
(DynamoDB key layout), `protocol` (frames), `auth` (tokens and origins), `connections`,
`groups`, `presence`, `counter`, `documents` (the data model), `sender` (the management
API fan-out engine), `broadcast` (group fan-out with page splitting) and `consumer`
(the lifecycle: connect, receive, disconnect, sweep).
"""
