// The V4 added-token table (spec §6.1): 1,283 entries, ids {0,1,2} ∪
// [128000, 129279]. DeepSeek-V3's table covers ids up to 128814; V4 appends
// named tokens, 415 multimodal span placeholders and vision/table tags.

export interface AddedToken {
  id: number;
  content: string;
  /** Removed by decode(skipSpecialTokens). */
  special: boolean;
}

const PLACEHOLDERS = 800; // <｜place▁holder▁no▁k｜> = 128000 + k

/** Named tokens from 128800 on, in id order (V3's tail, then V4's additions). */
const NAMED_128800 = [
  '<｜fim▁hole｜>', '<｜fim▁begin｜>', '<｜fim▁end｜>', '<｜User｜>', '<｜Assistant｜>', '<|EOT|>',
  '<｜tool▁calls▁begin｜>', '<｜tool▁calls▁end｜>', '<｜tool▁call▁begin｜>', '<｜tool▁call▁end｜>',
  '<｜tool▁outputs▁begin｜>', '<｜tool▁outputs▁end｜>', '<｜tool▁output▁begin｜>', '<｜tool▁output▁end｜>', '<｜tool▁sep｜>',
  // V4 additions (128815 …)
  '<｜begin▁of▁repo▁name｜>', '<｜end▁of▁repo▁name｜>', '<｜begin▁of▁file▁name｜>', '<｜end▁of▁file▁name｜>',
  '<｜begin▁of▁file｜>', '<｜end▁of▁file｜>', '<think>', '</think>', '<｜place▁holder▁for▁copy｜>',
  '<｜place▁holder▁for▁pointer▁replace｜>', '｜DSML｜', '<｜begin▁sys｜>', '<｜end▁sys｜>', '<｜latest_reminder｜>',
  '<｜action｜>', '<｜query｜>', '<｜authority｜>', '<｜domain｜>', '<｜task｜>', '<｜political｜>', '<｜entity｜>',
  '<｜title｜>', '<｜safety｜>', '<｜answer｜>', '<｜search｜>', '<dsml:', '</dsml:', '<｜search▁begin｜>',
  '<｜search▁end｜>', '<｜extracted_url｜>', '<｜read_url｜>', '<｜end_of_query｜>',
];
const MM_SPAN_FIRST_ID = 128847; // <|place_holder_mm_span_0021|> … _0435|>
const MM_SPAN_FIRST = 21;
const MM_SPAN_LAST = 435;
const NAMED_129262 = [
  '<｜rl_image_pad｜>', '<｜rl_image_start｜>', '<｜image2｜>', '<｜/table>｜', '<｜table｜>', '<｜/td｜>', '<｜td｜>',
  '<｜/tr｜>', '<｜tr｜>', '<｜/polygon｜>', '<｜polygon｜>', '<｜/point｜>', '<｜point｜>', '<｜/box｜>', '<｜box｜>',
  '<｜/ref｜>', '<｜ref｜>', '<｜image｜>',
];

export const V4_VOCAB_SIZE = 129280;

/** The full V4 table. BOS/EOS/pad, the numbered placeholders and <|EOT|> are "special" as in V3's file. */
export function v4AddedTokens(): AddedToken[] {
  const out: AddedToken[] = [
    { id: 0, content: '<｜begin▁of▁sentence｜>', special: true },
    { id: 1, content: '<｜end▁of▁sentence｜>', special: true },
    { id: 2, content: '<｜▁pad▁｜>', special: true },
  ];
  for (let k = 0; k < PLACEHOLDERS; k++) out.push({ id: 128000 + k, content: `<｜place▁holder▁no▁${k}｜>`, special: true });
  NAMED_128800.forEach((content, i) => out.push({ id: 128800 + i, content, special: content === '<|EOT|>' }));
  for (let n = MM_SPAN_FIRST; n <= MM_SPAN_LAST; n++) {
    out.push({ id: MM_SPAN_FIRST_ID + n - MM_SPAN_FIRST, content: `<|place_holder_mm_span_${String(n).padStart(4, '0')}|>`, special: false });
  }
  NAMED_129262.forEach((content, i) => out.push({ id: 129262 + i, content, special: false }));
  return out;
}
