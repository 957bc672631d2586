/** The BullMQ peer's 3-queue chain, shared by its driver and its worker process. */
export const BULLMQ_STEPS = 3;
export const queueName = (step: number) => `bench-s${step}`;
