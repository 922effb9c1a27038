/**
 * Runs a bash script in namespaces of its own (util-linux `unshare`): a network namespace, whose
 * loopback is brought up with iproute2 `ip`, so the script may use fixed ports (the README's
 * defaults) without meeting anything else on the machine; and a pid namespace, so every process
 * the script leaves behind is listed at the end and killed when the namespace's first process
 * exits (or when the test kills `unshare`: `--kill-child`).
 */

/** `unshare` flags tried in order: as root first, then in a user namespace (an unprivileged run). */
const unshareVariants = [
  ["--net", "--pid", "--fork", "--mount-proc", "--kill-child"],
  ["--user", "--map-root-user", "--net", "--pid", "--fork", "--mount-proc", "--kill-child"],
];

/** Where `unshare`, `ip`, `ps` and `timeout` live on Debian, before whatever PATH adds. */
const sbinPath = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/** Bound on the probe of one `unshare` variant. */
const probeTimeoutMs = 10_000;

const decoder = new TextDecoder();

/**
 * The `unshare` flags that give a network and pid namespace with loopback up here; throws with
 * what each attempt said when none does (a test must fail then, not skip).
 */
export async function namespaceFlags(): Promise<string[]> {
  const failures: string[] = [];
  for (const flags of unshareVariants) {
    try {
      const out = await new Deno.Command("unshare", {
        args: [...flags, "sh", "-c", "ip link set lo up && ip -o link show lo"],
        env: { PATH: `${sbinPath}:${Deno.env.get("PATH") ?? ""}` },
        stdin: "null",
        stdout: "piped",
        stderr: "piped",
        signal: AbortSignal.timeout(probeTimeoutMs),
      }).output();
      if (out.success && decoder.decode(out.stdout).includes("UP")) return flags;
      failures.push(`unshare ${flags.join(" ")}: exit ${out.code}, ${decoder.decode(out.stderr)}`);
    } catch (err) {
      failures.push(`unshare ${flags.join(" ")}: ${(err as Error).message}`);
    }
  }
  throw new Error(
    "This test needs its own network and pid namespace (util-linux `unshare` and iproute2 " +
      "`ip`, run as root or with user namespaces allowed), and none could be made:\n" +
      failures.join("\n"),
  );
}

export interface NamespaceRun {
  /** The script's exit code; 124 when `scriptTimeoutS` ran out. */
  scriptCode: number;
  /** Everything the script and the processes it started wrote, stdout and stderr apart. */
  stdout: string;
  stderr: string;
  /** Processes still alive in the namespace once the script ended ("PID ARGS" lines). */
  leftover: string[];
  /** Those of `ports` that still accepted a connection on 127.0.0.1 once the script ended. */
  openPorts: number[];
}

export interface NamespaceOptions {
  cwd: string;
  /** Added to (or replacing) the test's own environment. */
  env: Record<string, string>;
  /** Ports checked with a real connection after the script. */
  ports: number[];
  /** The script is stopped (SIGTERM, then SIGKILL 5 s later) after this many seconds. */
  scriptTimeoutS: number;
}

const marker = "@@trackmirror-netns";

/**
 * Runs `bash scriptPath` in a fresh namespace (`flags` from `namespaceFlags`), then, still inside
 * it, lists the processes left and the ports that still answer. Bounded: the script by
 * `scriptTimeoutS`, the whole run by that plus a margin, after which `unshare` is killed (and the
 * namespace with it) and this throws with the output so far.
 */
export async function runInNamespace(
  flags: string[],
  scriptPath: string,
  opts: NamespaceOptions,
): Promise<NamespaceRun> {
  const wrapper = [
    "ip link set lo up || exit 97",
    `timeout -k 5 ${opts.scriptTimeoutS} bash "$0" < /dev/null`,
    "code=$?",
    `echo "${marker} code $code"`,
    // Every process but this shell (pid 1) and ps itself (no pipe: no forked shell to list).
    "procs=$(ps -e -o pid=,args=)",
    "while read -r pid args; do",
    `  [ "$pid" = 1 ] || [ "\${args#ps -e}" != "$args" ] || echo "${marker} process $pid $args"`,
    'done <<< "$procs"',
    `for p in ${opts.ports.join(" ")}; do`,
    `  (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null && echo "${marker} open $p"`,
    "done",
    `echo "${marker} end"`,
  ].join("\n");
  const child = new Deno.Command("unshare", {
    args: [...flags, "bash", "-c", wrapper, scriptPath],
    cwd: opts.cwd,
    env: { ...opts.env, PATH: `${opts.env.PATH ?? Deno.env.get("PATH") ?? ""}:${sbinPath}` },
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const boundMs = (opts.scriptTimeoutS + 30) * 1000;
  let killed = false;
  const timer = setTimeout(() => {
    killed = true;
    child.kill("SIGKILL");
  }, boundMs);
  const out = await child.output().finally(() => clearTimeout(timer));
  const stdout = decoder.decode(out.stdout);
  const stderr = decoder.decode(out.stderr);
  const ours = stdout.split("\n").filter((l) => l.startsWith(marker + " "))
    .map((l) => l.slice(marker.length + 1));
  if (killed || !ours.includes("end")) {
    throw new Error(
      `The namespace run ${
        killed ? `was killed after ${boundMs} ms` : `ended (exit ${out.code})`
      }` +
        ` before its report\n--- stdout\n${stdout}\n--- stderr\n${stderr}`,
    );
  }
  const code = ours.find((l) => l.startsWith("code "));
  return {
    scriptCode: Number(code?.slice("code ".length)),
    stdout: stdout.split("\n").filter((l) => !l.startsWith(marker)).join("\n"),
    stderr,
    leftover: ours.filter((l) => l.startsWith("process ")).map((l) => l.slice(8).trim()),
    openPorts: ours.filter((l) => l.startsWith("open ")).map((l) => Number(l.slice(5))),
  };
}
