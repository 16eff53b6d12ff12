// Revocation with a confirmation in the page (a <dialog> rather than the browser's confirm box, so it can be
// styled, read out and driven by tests).

import { $ } from './dom.js';
import { showError, hideError, errorShownIn } from './notify.js';

const WORDS = {
  user: {
    title: 'Revoke this user?',
    explain: 'Every token issued to this user until now is refused from now on, in all of their sessions. '
      + 'Tokens your app mints for them afterwards are accepted, so stop minting for them too if you mean to lock them out.',
    button: 'Revoke user',
  },
  session: {
    title: 'Revoke this session?',
    explain: 'Every token of this session is refused from now on. The user\'s other sessions keep working.',
    button: 'Revoke session',
  },
};

export class RevokeDialog {
  /** revoke(kind, id) performs the call and returns its answer; it throws an ApiError. */
  constructor(revoke) {
    this.revoke = revoke;
    this.dialog = $('revoke-dialog');
    this.confirm = $('confirm-revoke');
    this.cancel = $('cancel-revoke');
    this.pending = null;
    this.cancel.addEventListener('click', () => this.dialog.close());
    this.confirm.addEventListener('click', () => this.#confirm());
    this.dialog.addEventListener('close', () => {
      if (errorShownIn('dialog-error-slot')) hideError();
      this.pending?.resolve(null);
      this.pending = null;
    });
  }

  /**
   * ask opens the dialog for a user or a session. It resolves to the revoke call's answer once
   * confirmed and done, or to null when the operator cancels.
   */
  ask(kind, id) {
    const w = WORDS[kind];
    $('revoke-title').textContent = w.title;
    $('revoke-target').textContent = id;
    $('revoke-explain').textContent = w.explain;
    this.confirm.textContent = w.button;
    this.confirm.disabled = false;
    this.cancel.disabled = false;
    this.dialog.dataset.kind = kind;
    this.dialog.showModal();
    this.cancel.focus();
    return new Promise((resolve) => { this.pending = { kind, id, resolve }; });
  }

  async #confirm() {
    const p = this.pending;
    if (!p) return;
    this.confirm.disabled = true;
    this.cancel.disabled = true;
    this.confirm.textContent = 'Revoking…';
    try {
      const answer = await this.revoke(p.kind, p.id);
      this.pending = null;
      this.dialog.close();
      p.resolve(answer);
    } catch (err) {
      this.confirm.disabled = false;
      this.cancel.disabled = false;
      this.confirm.textContent = WORDS[p.kind].button;
      showError(`Not revoked. ${err.message}`, 'dialog-error-slot');
    }
  }
}
