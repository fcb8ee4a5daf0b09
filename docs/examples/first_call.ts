// A first call to xerolink's poster from TypeScript on Node: post a bill, retry it safely, watch it
// link, read a refusal, find the link by name and unlink it. @grpc/proto-loader reads the .proto
// files of this repository at run time, so nothing is generated or copied.
//
// Build and run:  npx tsc -p docs/examples && XEROLINK_POSTER=localhost:50062 node build/examples/first_call.js
import * as grpc from "@grpc/grpc-js";
import * as protoLoader from "@grpc/proto-loader";
import * as path from "node:path";

const TARGET = process.env.XEROLINK_POSTER ?? "localhost:50062";
const CONNECTION = process.env.XEROLINK_CONNECTION ?? "main";
const BILL_ID = Number(process.env.XEROLINK_BILL_ID ?? "7001");
const PROTOS = process.env.XEROLINK_PROTOS ?? path.join(__dirname, "..", "..", "protos");

// keepCase: the proto field names (connection_id); longs and enums as strings, as in proto3 JSON.
const definition = protoLoader.loadSync("xerolink/poster/v1/poster_service.proto", {
  includeDirs: [PROTOS],
  keepCase: true,
  longs: String,
  enums: String,
  oneofs: true,
});
const loaded = grpc.loadPackageDefinition(definition) as any;
const Poster = loaded.xerolink.poster.v1.PosterService as typeof grpc.Client;

interface Decision {
  supported?: boolean;
  outcome: string;
  reason_code: string;
  reason: string;
}
interface Posting {
  name: string;
  state: string;
}
interface PostAnswer {
  posting: Posting;
  outcome: string;
  decision: Decision;
}
interface RecordKey {
  kind: string;
  id: string;
}
interface Link {
  name: string;
  record: RecordKey;
  xero_objects: { xero_id: string }[];
}

const client = new Poster(TARGET, grpc.credentials.createInsecure()) as any;

function call<T>(method: string, request: object): Promise<T> {
  return new Promise((resolve, reject) => {
    const deadline = new Date(Date.now() + 10_000);
    client[method](request, { deadline }, (err: grpc.ServiceError | null, answer: T) =>
      err ? reject(err) : resolve(answer),
    );
  });
}

const aud = (cents: number) => ({ currency_code: "AUD", units: String(cents) });
const header = (id: number) => ({
  id: String(id),
  division_id: "1",
  currency_code: "AUD",
  posted_at: { seconds: String(Date.parse("2026-03-02T09:30:00Z") / 1000) },
  transaction_date: { year: 2026, month: 3, day: 2 },
  participant: { participant_id: "501", display_name: "Harper & Cole Pty Ltd" },
});
const bill = (id: number) => ({
  header: header(id),
  client_bill: {
    bill_number: `INV-${id}`,
    due_date: { year: 2026, month: 4, day: 1 },
    lines: [{ description: "Advice on lease", gl_account: "200", tax_code: "GST", amount: aud(45000), tax: aud(4500) }],
    totals: { exclusive: aud(45000), tax: aud(4500), inclusive: aud(49500) },
  },
});
const journal = (id: number) => ({
  header: header(id),
  general_journal: {
    narration: "Reclassify",
    lines: [
      { gl_account: "420", description: "To office", amount: aud(10000) },
      { gl_account: "489", description: "From telephone", amount: aud(-10000) },
    ],
  },
});

function watchUntilSettled(name: string): Promise<string> {
  const settled = new Set(["LINK_STATE_LINKED", "LINK_STATE_FAILED", "LINK_STATE_UNLINKED"]);
  return new Promise((resolve, reject) => {
    const stream = client.WatchPosting({ name }, { deadline: new Date(Date.now() + 30_000) });
    stream.on("data", (update: { posting: Posting }) => {
      if (settled.has(update.posting.state)) {
        resolve(update.posting.state);
        stream.cancel();
      }
    });
    stream.on("error", (err: grpc.ServiceError) => {
      if (err.code !== grpc.status.CANCELLED) reject(err);
    });
  });
}

async function main(): Promise<void> {
  const summary: Record<string, unknown> = {};

  // 1. Post. request_id makes the call safe to retry: the same id with the same content answers
  //    with the first posting and queues nothing new (AIP-155).
  const request = { connection_id: CONNECTION, transaction: bill(BILL_ID), request_id: `bill-${BILL_ID}-v1` };
  const first = await call<PostAnswer>("PostTransaction", request);
  if (first.outcome !== "POST_OUTCOME_ACCEPTED") throw new Error(`not accepted: ${JSON.stringify(first)}`);
  summary.posting = first.posting.name;

  // 2. Retry (say the answer was lost on the way back): DUPLICATE, the same posting.
  const again = await call<PostAnswer>("PostTransaction", request);
  summary.retry = again.outcome;

  // 3. Watch until the posting settles.
  summary.state = await watchUntilSettled(first.posting.name);

  // 4. A refusal is an answer, not an error: outcome NOT_SUPPORTED, with the reason.
  const refused = await call<PostAnswer>("PostTransaction", {
    connection_id: CONNECTION,
    transaction: journal(BILL_ID + 1),
  });
  if (refused.outcome === "POST_OUTCOME_NOT_SUPPORTED") {
    summary.refusal = { reason_code: refused.decision.reason_code, reason: refused.decision.reason };
  }

  // 5. Read the link by its name: the kind by name, then the Actionstep id.
  const { link } = await call<{ link: Link }>("GetLink", {
    name: `connections/${CONNECTION}/links/client-bill/${BILL_ID}`,
  });
  summary.link = link.name;
  summary.xero_ids = link.xero_objects.map((o) => o.xero_id);

  // 6. Unlink it by its name (or its record, with records: [link.record]): preview first, then confirm.
  const names = [link.name];
  const preview = await call<{ outcomes: { action: string }[] }>("UnlinkLinks", {
    connection_id: CONNECTION,
    names,
    validate_only: true,
  });
  summary.preview = preview.outcomes.map((o) => o.action);
  const done = await call<{ unlinked_count: number }>("UnlinkLinks", { connection_id: CONNECTION, names, confirm: true });
  summary.unlinked = done.unlinked_count;

  console.log(JSON.stringify(summary));
  client.close();
}

main().catch((err: grpc.ServiceError) => {
  // err.details is the sentence; err.metadata carries google.rpc details (grpc-status-details-bin).
  console.error(`${grpc.status[err.code] ?? "ERROR"}: ${err.details ?? err.message}`);
  process.exit(1);
});
