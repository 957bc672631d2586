import { z } from "zod";
import { Region, Token } from "../protocol/tokens.js";

/**
 * Data-residency rules: a rule name (what a step writes as `residency: gdpr`) → the regions its
 * data may be stored in and processed by, in order of preference. Failover and least-busy
 * routing choose only among these; an unknown rule is an error, never "anywhere".
 */
export const ResidencyRules = z.record(Token, z.array(Region).min(1, "a residency rule needs at least one region"));
export type ResidencyRules = z.infer<typeof ResidencyRules>;
