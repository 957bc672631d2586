import type { StepDefinition } from "@flowmonkey/shared";
import type { TaskRoute } from "./router.js";

/** What a step's definition asks of routing; the relay's router turns it into regions to try. */
export function taskRouteOf(def: Pick<StepDefinition, "region" | "residency" | "require">): TaskRoute {
  return {
    ...(def.region !== undefined ? { pinned: true as const } : {}),
    ...(def.residency !== undefined ? { residency: def.residency } : {}),
    ...(def.require?.length ? { require: def.require } : {}),
  };
}

/** Whether a task needs the router: always on a multi-region hub (failover); otherwise only for residency or capabilities. */
export function needsRouting(route: TaskRoute | undefined, multiRegion: boolean): boolean {
  return multiRegion || route?.residency !== undefined || (route?.require?.length ?? 0) > 0;
}
