// A real sliding sync client (matrix-js-sdk's SlidingSync, MSC4186) for
// tests/integration/test_sliding_sync_js_client.py.
//
// node sliding_sync_client.mjs BASE_URL USER_ID DEVICE_ID ACCESS_TOKEN ROOM_COUNT OPEN_ROOM LIVE_BODY
//
// Prints one JSON line per stage: "list" (the room list once ROOM_COUNT rooms
// are known, sorted by recency as the SDK sorts it, by bump stamp), "opened"
// (the timeline of OPEN_ROOM after subscribing to it), "live" (a message with
// LIVE_BODY arrived in OPEN_ROOM's live timeline), then exits 0. Any error: exit 1.
import * as sdk from "matrix-js-sdk";
import { SlidingSync } from "matrix-js-sdk/lib/sliding-sync.js";

const [baseUrl, userId, deviceId, accessToken, roomCountText, openRoom, liveBody] =
  process.argv.slice(2);
const roomCount = Number(roomCountText);

const client = sdk.createClient({ baseUrl, userId, deviceId, accessToken });
const slidingSync = new SlidingSync(
  baseUrl,
  new Map([
    [
      "all",
      {
        ranges: [[0, 19]],
        timeline_limit: 1,
        required_state: [
          ["m.room.name", ""],
          ["m.room.create", ""],
          ["m.room.member", "$ME"],
        ],
      },
    ],
  ]),
  { timeline_limit: 10, required_state: [["*", "*"]] },
  client,
  5000,
);

function say(stage, data) {
  process.stdout.write("STAGE " + JSON.stringify({ stage, ...data }) + "\n");
}

function bodies(room) {
  return room
    .getLiveTimeline()
    .getEvents()
    .filter((event) => event.getType() === "m.room.message")
    .map((event) => event.getContent().body);
}

function sortedRooms() {
  return client
    .getRooms()
    .filter((room) => room.getBumpStamp() !== undefined)
    .sort((a, b) => b.getBumpStamp() - a.getBumpStamp())
    .map((room) => room.roomId);
}

let stage = "list";
const deadline = setTimeout(() => {
  console.error(`timed out at stage ${stage}`);
  process.exit(1);
}, 60000);

async function waitFor(check) {
  for (;;) {
    const result = check();
    if (result) return result;
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

client.on(sdk.RoomEvent.Timeline, (event, room, toStartOfTimeline) => {
  if (stage !== "live" || toStartOfTimeline || room?.roomId !== openRoom) return;
  if (event.getType() === "m.room.message" && event.getContent().body === liveBody) {
    say("live", { room_id: room.roomId, body: liveBody, sender: event.getSender() });
    clearTimeout(deadline);
    slidingSync.stop();
    client.stopClient();
    process.exit(0);
  }
});

await client.startClient({ slidingSync });
const list = await waitFor(() => {
  const rooms = sortedRooms();
  return rooms.length >= roomCount ? rooms : null;
});
say("list", {
  rooms: list,
  names: list.map((roomId) => client.getRoom(roomId).name),
});

stage = "opened";
slidingSync.modifyRoomSubscriptions(new Set([openRoom]));
const opened = await waitFor(() => {
  const room = client.getRoom(openRoom);
  const seen = room ? bodies(room) : [];
  return seen.length > 1 ? seen : null;
});
stage = "live";
say("opened", { room_id: openRoom, bodies: opened });
