/**
 * How the operator commands (reconstruct, verify) drive a job on a volume's owning host agent:
 * start it, poll its progress until it is over, and say in words why it could not run (the agent
 * unreachable, the backup offline, a refusal) or why it ended without success.
 */
import type { ServiceCallError } from "../../src/http_client.ts";
import type { VolumeInfo } from "../../src/schemas.ts";
import type { ShownProgress } from "./progress_display.ts";

/** What every job's progress carries (resync and verify alike). */
export interface JobProgress extends ShownProgress {
  error: string | null;
}

/** The job's final progress, and `error` unless it ended "done". */
export interface JobResult<P> {
  volume: string;
  progress?: P;
  error?: string;
}

/**
 * Starts the job with `start`, shows and polls its progress every `pollMs` until it is no longer
 * running. `check` may refuse the first answer (returning why), e.g. an agent too old for the job.
 */
export async function followHostJob<P extends JobProgress>(
  info: VolumeInfo,
  job: { start(): Promise<P>; poll(): Promise<P> },
  pollMs: number,
  show: (p: P) => void,
  check: (first: P) => string | undefined = () => undefined,
): Promise<JobResult<P>> {
  let progress: P;
  try {
    progress = await job.start();
  } catch (err) {
    const e = err as ServiceCallError;
    const why = e.status === 0
      ? `host agent "${info.ownerHost}" at ${info.ownerUrl} is unreachable (${e.message})`
      : e.status === 503
      ? `backup is still offline for host "${info.ownerHost}": ${e.message}`
      : e.message;
    return { volume: info.name, error: why };
  }
  const refusal = check(progress);
  if (refusal !== undefined) return { volume: info.name, error: refusal };
  while (progress.state === "running") {
    show(progress);
    await new Promise((r) => setTimeout(r, pollMs));
    try {
      progress = await job.poll();
    } catch (err) {
      return {
        volume: info.name,
        error: `lost contact with host agent "${info.ownerHost}": ${(err as Error).message}`,
      };
    }
  }
  show(progress);
  if (progress.state !== "done") {
    return { volume: info.name, progress, error: progress.error ?? progress.state };
  }
  return { volume: info.name, progress };
}
