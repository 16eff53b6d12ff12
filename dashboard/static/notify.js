// Messages in words. There is one error element (data-testid="error"); it moves next to what
// failed: the sign-in form, the revoke dialog, or the corner of the dashboard.

import { $ } from './dom.js';

const timers = new Map();

/** showError puts message in the error element, inside the slot with this id. */
export function showError(message, slotId) {
  const el = $('error');
  $(slotId).append(el);
  el.textContent = message;
  el.hidden = false;
}

/** hideError empties and hides the error element. */
export function hideError() {
  const el = $('error');
  el.hidden = true;
  el.textContent = '';
}

/** errorShownIn reports whether the error element is visible in this slot. */
export function errorShownIn(slotId) {
  const el = $('error');
  return !el.hidden && el.parentElement?.id === slotId;
}

/**
 * toast shows text in the element with this id (revoke-result or notice) until dismissed, or for
 * ms milliseconds when ms > 0.
 */
export function toast(id, text, ms = 0) {
  const el = $(id);
  el.textContent = text;
  el.hidden = false;
  clearTimeout(timers.get(id));
  if (ms > 0) timers.set(id, setTimeout(() => { el.hidden = true; }, ms));
}

/** hideToasts hides every message, e.g. on sign-out. */
export function hideToasts() {
  for (const id of ['revoke-result', 'notice']) {
    clearTimeout(timers.get(id));
    $(id).hidden = true;
    $(id).textContent = '';
  }
  hideError();
}
