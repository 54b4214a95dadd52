"""The large model: a causal transformer user tower over an item tower that carries content.

Architecture (shapes: ``B`` users, ``L = max_len`` events, ``D = dim``, ``N`` items,
``F`` content features, ``T`` event types, ``C`` categories)::

    item tower   v(i) = E_id[i] + W_c x(i)          E_id (N, D) growable, x(i) (F,) fixed
                 (x: text vector + multi-hot categories + standardised numeric attributes)
    user tower   e_t = v(i_t) + E_type[type_t] + E_pos[t] + E_gap[bucket(gap_t)]   (B, L, D)
                 h = LN(Block_n(... Block_1(dropout(e))))   pre-LN, causal + padding mask
    heads        u = h[:, -1] (or an MMoE task mix); event type (T,), category (C,) logits
    score        s(user, i) = <u, v(i)>                         (dot product: ANN-ready)

A user is represented by what they did (their last ``max_len`` events, kept as arrays and
appended to by ``partial_fit``), so a user with one event is served from that event and a
new event changes the next recommendation at once. An item with no interaction has a zero
id row, so its vector is its content projection: it is scorable as soon as it arrives.

Dynamic vocabulary (see :class:`lifelongrec.features.IdVocabulary`): ids map to table
rows without hashing. An item gets its own row once it has ``item_min_count`` events
(before that, its events stay in the users' sequences as a shared out-of-vocabulary
input, :data:`OOV_ROW`, with a learned vector: the user vector sees that something
happened, and the item is never recommended). With ``user_ttl`` / ``item_ttl``, ids
unseen for that long are expired at each ``partial_fit`` (and by :meth:`expire`): their
rows are reset and reused by the next new ids before the tables grow, so memory stays
flat when ids churn; a reused item row starts exactly as a new one (zero id embedding,
content from the catalogue, no optimiser state).

Training (pieces from :mod:`lifelongrec.nn`): next-item prediction at every
position (inputs ``seq[:-1]``, targets ``seq[1:]``), full softmax over a small catalogue
and logQ-corrected sampled softmax (in-batch + uniform negatives) over a large one, plus
the weighted auxiliary heads; AdamW, gradient clipping, early stopping on the full-ranking
NDCG@10 of each user's last training event (held out), best weights kept. Online
steps and updates train on the same windows with the same loss.

The parts, each readable alone (none calls back into the estimator):

=================  ==================================================================
``_params``        :class:`SequentialParams`, the hyperparameters (typed, documented,
                   checked), and the configs they turn into
``_modules``       the torch modules with typed configs: item tower, user encoder,
                   :class:`SequentialModule` (heads: :mod:`lifelongrec.models.heads`)
``_content``       :class:`ContentFeaturizer`: text, categories, numeric attributes
``_events``        the one event encoder of fit, updates, observe and given histories
``_histories``     the user-history store and the one merge of new events into it
``_lifecycle``     the id/row lifecycle (admission, expiry, reuse) and its RowChanges
``_items``         the item tables (content, category targets, id rows) those change
``_windows``       what is trained on: fit (with validation), update, replay windows
``_trainer``       the one trainer (loss, loop, early stopping, Fisher) of fit,
                   partial_fit and online steps
``_online``        the online buffer: observed events waiting for an online step
``_state``         save/load, namespaced by part, with a format version
``_learned``       read-only views of the learned state (``module_``, ``optimizer_``,
                   ``ewc_``, ``user_histories_``, ...): a mixin of the estimator
``_scoring``       user and item vectors and their scores (free rows masked, age
                   biases added): a mixin of the estimator
``_estimator``     :class:`SequentialRecommender`, which composes them
=================  ==================================================================
"""

from lifelongrec.models._base import FreeRow
from lifelongrec.models.sequential._content import ContentFeaturizer
from lifelongrec.models.sequential._estimator import SequentialRecommender
from lifelongrec.models.sequential._events import OOV_ROW
from lifelongrec.models.sequential._modules import (
    EncoderConfig,
    ItemTower,
    ItemTowerConfig,
    SequentialModule,
    UserEncoder,
)
from lifelongrec.models.sequential._params import DEFAULT_TASK_WEIGHTS, SequentialParams

__all__ = [
    "DEFAULT_TASK_WEIGHTS",
    "OOV_ROW",
    "ContentFeaturizer",
    "EncoderConfig",
    "FreeRow",
    "ItemTower",
    "ItemTowerConfig",
    "SequentialModule",
    "SequentialParams",
    "SequentialRecommender",
    "UserEncoder",
]
