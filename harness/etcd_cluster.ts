/**
 * A real etcd cluster (Debian's etcd-server, 3.4) on loopback for tests and benchmarks: every
 * member gets a client and a peer port picked free, a data dir under the caller's directory, and
 * the whole `--initial-cluster`; members can be SIGKILLed and started again on the same ports and
 * data (a restarted member rejoins), and `stop()` kills every member and checks its client port
 * no longer answers, so no test leaves a process behind.
 */
import { freePort } from "./service_process.ts";

/** How long a member may take to answer /health after it started. */
export const etcdReadyMsDefault = 20_000;

/** One member of the cluster. */
export interface EtcdMember {
  readonly name: string;
  /** "127.0.0.1:PORT" of its client URL. */
  readonly endpoint: string;
  readonly running: boolean;
  /** SIGKILLs the member and waits for its exit. */
  kill(): Promise<void>;
  /** Starts the member again (same ports, same data dir); does not wait for quorum. */
  start(): void;
  /** What the member printed (its last 20 000 characters). */
  output(): string;
}

/** A running cluster. */
export interface EtcdCluster {
  readonly members: EtcdMember[];
  /** Every member's "127.0.0.1:PORT", in member order. */
  readonly endpoints: string[];
  /** `etcd://HOST:PORT,...` for the tracker's --kv (with `/namespace` when given). */
  kvUrl(namespace?: string): string;
  /** Waits until a range through `member` (default: any) succeeds, i.e. the cluster has quorum. */
  ready(timeoutMs?: number): Promise<void>;
  /** Kills every member and waits until no client port answers. */
  stop(): Promise<void>;
}

/** Whether an etcd binary is on PATH. */
export function haveEtcd(): boolean {
  try {
    return new Deno.Command("etcd", { args: ["--version"], stdout: "null", stderr: "null" })
      .outputSync().success;
  } catch {
    return false;
  }
}

/** Starts `size` members in `dir` and waits until the cluster answers. */
export async function startEtcdCluster(dir: string, size = 3): Promise<EtcdCluster> {
  const specs = Array.from({ length: size }, (_, i) => ({
    name: `m${i}`,
    client: freePort(),
    peer: freePort(),
  }));
  const initialCluster = specs.map((s) => `${s.name}=http://127.0.0.1:${s.peer}`).join(",");
  const token = `tm-${crypto.randomUUID()}`;
  const members = specs.map((s) => {
    let child: Deno.ChildProcess | null = null;
    let status: Promise<unknown> = Promise.resolve();
    let log = "";
    const spawn = () => {
      child = new Deno.Command("etcd", {
        args: [
          `--name=${s.name}`,
          `--data-dir=${dir}/${s.name}.etcd`,
          `--listen-client-urls=http://127.0.0.1:${s.client}`,
          `--advertise-client-urls=http://127.0.0.1:${s.client}`,
          `--listen-peer-urls=http://127.0.0.1:${s.peer}`,
          `--initial-advertise-peer-urls=http://127.0.0.1:${s.peer}`,
          `--initial-cluster=${initialCluster}`,
          `--initial-cluster-token=${token}`,
          "--initial-cluster-state=new",
          // Quick elections on loopback: a killed leader is replaced within a second or two.
          "--heartbeat-interval=100",
          "--election-timeout=1000",
          "--logger=zap",
          "--log-level=warn",
        ],
        stdout: "piped",
        stderr: "piped",
      }).spawn();
      const c = child;
      const drain = async (stream: ReadableStream<Uint8Array>) => {
        const d = new TextDecoder();
        for await (const chunk of stream) log = (log + d.decode(chunk)).slice(-20_000);
      };
      status = Promise.all([c.status, drain(c.stdout), drain(c.stderr)]).then(() => {
        if (child === c) child = null;
      });
    };
    spawn();
    const member: EtcdMember = {
      name: s.name,
      endpoint: `127.0.0.1:${s.client}`,
      get running() {
        return child !== null;
      },
      async kill() {
        child?.kill("SIGKILL");
        await status;
      },
      start() {
        if (child) throw new Error(`etcd member ${s.name} is already running`);
        spawn();
      },
      output: () => log,
    };
    return member;
  });
  const cluster: EtcdCluster = {
    members,
    endpoints: members.map((m) => m.endpoint),
    kvUrl: (namespace) =>
      `etcd://${members.map((m) => m.endpoint).join(",")}${namespace ? `/${namespace}` : ""}`,
    async ready(timeoutMs = etcdReadyMsDefault) {
      const deadline = Date.now() + timeoutMs;
      while (Date.now() < deadline) {
        for (const m of members.filter((m) => m.running)) {
          if (await answersRange(m.endpoint)) return;
        }
        await new Promise((r) => setTimeout(r, 100));
      }
      throw new Error(
        `etcd cluster did not answer within ${timeoutMs} ms:\n` +
          members.map((m) => `${m.name}: ${m.output().slice(-2000)}`).join("\n"),
      );
    },
    async stop() {
      await Promise.all(members.map((m) => m.kill()));
      for (const m of members) {
        if (await answersRange(m.endpoint)) throw new Error(`etcd ${m.endpoint} still answers`);
      }
    },
  };
  try {
    await cluster.ready();
  } catch (err) {
    await cluster.stop();
    throw err;
  }
  return cluster;
}

/** Whether a linearizable range through `endpoint` succeeds (the member is up and has quorum). */
async function answersRange(endpoint: string): Promise<boolean> {
  try {
    const res = await fetch(`http://${endpoint}/v3/kv/range`, {
      method: "POST",
      body: JSON.stringify({ key: btoa("ready") }),
      signal: AbortSignal.timeout(1000),
    });
    await res.body?.cancel();
    return res.ok;
  } catch {
    return false;
  }
}
