// The Vercel AI SDK (ai@6, @ai-sdk/openai@3) against the shim: `openai.chat(model)` speaks
// Chat Completions (the shim's responses route translates it).
// Usage: node ai_sdk_chat.mjs text|stream|tool|stream-tool   (env SHIM_BASE_URL=.../v1, SHIM_MODEL,
// SHIM_MAX_OUTPUT_TOKENS: a limit for text modes, none if unset)
// Prints one JSON document: what the SDK returned, plus the request bodies it sent (a recording
// fetch). Any SDK error (the SDK validates every chunk with zod) exits non-zero with its message.
import { createOpenAI } from "@ai-sdk/openai";
import { generateText, stepCountIs, streamText, tool } from "ai";
import { z } from "zod";

const mode = process.argv[2];
const baseURL = process.env.SHIM_BASE_URL;
const modelId = process.env.SHIM_MODEL;
const limit = process.env.SHIM_MAX_OUTPUT_TOKENS;
const maxOutputTokens = limit ? Number(limit) : undefined;

const requests = [];
async function recordingFetch(url, init) {
  requests.push({ url: String(url), body: init?.body ? JSON.parse(init.body) : null });
  return fetch(url, init);
}

const openai = createOpenAI({ baseURL, apiKey: "sk-test", fetch: recordingFetch });
const model = openai.chat(modelId);

const weather = tool({
  description: "The weather for a city.",
  inputSchema: z.object({ city: z.string() }),
  execute: async ({ city }) => `Sunny and 21 C in ${city}`,
});

function stepsOf(steps) {
  return steps.map((s) => ({
    finishReason: s.finishReason,
    text: s.text,
    toolCalls: s.toolCalls.map((c) => ({ toolCallId: c.toolCallId, toolName: c.toolName, input: c.input })),
    toolResults: s.toolResults.map((r) => ({ toolCallId: r.toolCallId, output: r.output })),
    responseId: s.response?.id,
    usage: s.usage,
  }));
}

async function drain(r) {
  const deltas = [];
  const parts = [];
  for await (const part of r.fullStream) {
    parts.push(part.type);
    if (part.type === "error") throw part.error;
    if (part.type === "text-delta") deltas.push(part.text);
  }
  return { deltas, parts };
}

async function main() {
  const common = { model, temperature: 0, maxOutputTokens };
  const toolRun = { ...common, prompt: "What is the weather in Paris?", tools: { get_weather: weather }, stopWhen: stepCountIs(3) };
  if (mode === "text") {
    const r = await generateText({ ...common, system: "Answer briefly.", prompt: "What is the capital of France?" });
    return { text: r.text, finishReason: r.finishReason, usage: r.usage, responseId: r.response.id, warnings: r.warnings };
  }
  if (mode === "stream") {
    const r = streamText({ ...common, prompt: "Name a colour.", onError: ({ error }) => { throw error; } });
    const { deltas, parts } = await drain(r);
    return { deltas, parts, text: await r.text, finishReason: await r.finishReason, usage: await r.usage };
  }
  if (mode === "tool") {
    const r = await generateText(toolRun);
    return { text: r.text, finishReason: r.finishReason, steps: stepsOf(r.steps) };
  }
  if (mode === "stream-tool") {
    const r = streamText({ ...toolRun, onError: ({ error }) => { throw error; } });
    const { deltas, parts } = await drain(r);
    return { deltas, parts, text: await r.text, finishReason: await r.finishReason, steps: stepsOf(await r.steps) };
  }
  throw new Error(`unknown mode ${mode}`);
}

main().then(
  (result) => process.stdout.write(JSON.stringify({ ...result, requests })),
  (error) => {
    process.stderr.write(`${error?.stack || error}\n${JSON.stringify(error?.responseBody ?? "")}\n`);
    process.exit(1);
  },
);
