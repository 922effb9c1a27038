/**
 * Moved to harness/service_process.ts; kept only for tests/tracker_*.test.ts until they import the
 * harness directly. Delete once nothing imports it.
 */
export { freePort, type ServiceProcess, startService } from "../../harness/service_process.ts";
