"""`python -m devtools.stack` (what `make dev` runs): start the stack, print where it is,
run until Ctrl-C / SIGTERM, then stop everything cleanly.

`--ready-json` prints one line `STACK_READY {...}` with the URLs once started (what
`StackProcess` reads).
"""

from __future__ import annotations

import argparse
import json
import logging
import signal
import sys
import threading
import warnings

from devtools.stack import exposure
from devtools.stack.config import stack_kwargs_from_env
from devtools.stack.stack import Stack, StackError


def banner(stack: Stack) -> str:
    docs = stack.tables.get("DocumentsTable", "documents")
    lines = [
        "",
        "serverless-realtime: local stack running (Ctrl-C stops it)",
        f"  WebSocket    {stack.ws_url}   (also {stack.ws_stage_url}; ?token=<JWT> to sign in)",
        f"  @connections {stack.management_endpoint}/@connections/{{id}}   (POST / GET / DELETE, SigV4 with local/local)",
        f"  demo page    {stack.web_url}/?user=alice&name=Alice   (anonymous without parameters)",
        f"  dev tokens   {stack.web_url}/dev/token?user=alice&name=Alice",
        f"  AWS (moto)   {stack.aws_endpoint}   DynamoDB, DynamoDB Streams, SQS, EventBridge",
        f"  event bus    {stack.event_bus_name}   (realtime.publish events run the publish function; "
        f"POST {stack.web_url}/dev/alerts from the demo)",
        f"  tables       {', '.join(f'{lid}={name}' for lid, name in stack.tables.items())}",
        f"  JWT secret   {stack.secret_origin}",
        f"  data         {stack.data_origin}",
    ]
    if stack.state is not None:
        lines.append("               start clean: DEV_FRESH=1 make dev (or make dev-reset); the secret stays")
    lines += [
        f"  started in   {stack.startup_seconds:.2f} s",
        "",
        "Write a document from another process and watch subscribers get notified:",
        f"  aws dynamodb put-item --endpoint-url {stack.aws_endpoint} --region us-east-1 \\",
        f"      --table-name {docs} \\",
        '      --item \'{"slug":{"S":"hello"},"title":{"S":"Hello"},"visibility":{"S":"public"}}\'',
        "  (AWS CLI needs any credentials: AWS_ACCESS_KEY_ID=local AWS_SECRET_ACCESS_KEY=local)",
        "  python -c \"import boto3; boto3.client('dynamodb', endpoint_url='"
        + stack.aws_endpoint + "', region_name='us-east-1', aws_access_key_id='local', "
        "aws_secret_access_key='local').put_item(TableName='" + docs
        + "', Item={'slug': {'S': 'hello'}, 'title': {'S': 'Hello'}})\"",
        "Send Alice an alert (her pages subscribed to alerts show it):",
        f"  aws events put-events --endpoint-url {stack.aws_endpoint} --region us-east-1 --entries "
        f"'[{{\"EventBusName\":\"{stack.event_bus_name}\",\"Source\":\"cli\",\"DetailType\":\"realtime.publish\","
        "\"Detail\":\"{\\\"stream\\\":\\\"alerts\\\",\\\"to\\\":{\\\"user\\\":\\\"alice\\\"},"
        "\\\"payload\\\":{\\\"text\\\":\\\"Hello\\\"}}\"}]'",
        "",
    ]
    missing = [f"{fn.logical_id} ({fn.import_error})" for fn in stack.functions.functions.values() if fn.import_error]
    if missing:
        lines += ["Not loaded (their routes answer errors, their triggers are off):"]
        lines += [f"  {m}" for m in missing] + [""]
    if stack.remote:
        tokens = "off" if stack.token_refusal else "environment" if stack.secret_given else "development"
        lines += [exposure.warning(stack.host, ws_port=stack.ws_port, web_port=stack.web_port,
                                   aws_port=stack.aws_port, tokens=tokens), ""]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m devtools.stack", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--ready-json", action="store_true", help="print STACK_READY {json} when started")
    parser.add_argument("--quiet", action="store_true", help="only warnings from the stack itself")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING if args.quiet else logging.INFO,
                        format="%(asctime)s.%(msecs)03d %(levelname)-5s %(message)s", datefmt="%H:%M:%S",
                        stream=sys.stderr)
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    warnings.filterwarnings("ignore", message="POWERTOOLS_DEV environment variable is enabled")
    warnings.filterwarnings("ignore", message="No application metrics to publish")
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)
    logging.getLogger("botocore").setLevel(logging.WARNING)

    stop = threading.Event()

    def on_signal(signum: int, frame: object) -> None:
        stop.set()

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    try:
        stack = Stack(**stack_kwargs_from_env()).start()
    except StackError as exc:
        print(f"make dev: {exc}", file=sys.stderr)
        return 1
    try:
        print(banner(stack), file=sys.stderr, flush=True)
        if args.ready_json:
            info = {"ws_url": stack.ws_url, "web_url": stack.web_url, "aws_endpoint": stack.aws_endpoint,
                    "management_endpoint": stack.management_endpoint, "stage": stack.stage,
                    "tables": stack.tables, "queues": stack.queues, "jwt_secret": stack.jwt_secret,
                    "event_bus": stack.event_bus_name,
                    "startup_seconds": stack.startup_seconds}
            print("STACK_READY " + json.dumps(info), flush=True)
        while not stop.wait(0.5):
            pass
        print("\nstopping...", file=sys.stderr, flush=True)
    finally:
        stack.stop()
    print("stopped.", file=sys.stderr, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
