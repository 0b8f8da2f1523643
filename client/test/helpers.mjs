// Shared set-up of the client's unit tests: a client on the fake WebSocket and fake clock.
import {connect} from "../realtime.js";
import {FakeClock, fakeWebSocket, settle} from "./fakes.mjs";

export const URL = "wss://example.test/prod";

/** A client on fakes; `random` defaults to 0.5 (half of every backoff ceiling), and the
 * first reconnect after a drop waits at most 1 s (`firstReconnectMaxMs`; 5 s by default,
 * tested on its own) so most tests reconnect after 500 ms. */
export async function setup({ackHeartbeats = true, ...options} = {}) {
  const clock = new FakeClock();
  const {FakeWebSocket, sockets} = fakeWebSocket({ackHeartbeats});
  const states = [];
  const client = connect(URL, {WebSocket: FakeWebSocket, timers: clock, random: () => 0.5,
                               firstReconnectMaxMs: 1000, ...options});
  client.on("state", (state) => states.push(state));
  await settle();
  return {client, clock, sockets, states};
}

/** The client on an accepted socket. */
export async function open(options) {
  const env = await setup(options);
  env.sockets[0].accept();
  await settle();
  return env;
}

/** Drop the current socket and accept the next one (after the first-reconnect delay). */
export async function reconnect({clock, sockets}, code = 1006) {
  sockets.at(-1).drop(code);
  await clock.advance(500);
  sockets.at(-1).accept();
  await settle();
  return sockets.at(-1);
}

/** Frames sent on a socket, without their ids. */
export function sent(socket) {
  return socket.sent.map(({id, ...frame}) => frame);
}
