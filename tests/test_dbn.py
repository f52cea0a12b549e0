"""DBN: greedy stacking of RBMs, exact label prediction, sampling, bad input."""
import numpy as np
import pytest

import ebmfast as ef


def test_one_layer_dbn_is_an_rbm():
    X = ef.datasets.bars_and_stripes(3)
    dbn = ef.DBN([9, 16], seed=5, epochs=50, learning_rate=0.1, batch_size=14).fit(X)
    rbm = ef.RBM(9, 16, seed=5, epochs=50, learning_rate=0.1, batch_size=14).fit(X)
    np.testing.assert_array_equal(dbn.rbms_[0].W, rbm.W)
    np.testing.assert_array_equal(dbn.transform(X), rbm.transform(X))


def test_greedy_layers_train_on_the_layer_below():
    X = ef.datasets.digits()
    dbn = ef.DBN([64, 32, 16], seed=1, epochs=5, learning_rate=0.05, batch_size=50).fit(X)
    H1 = dbn.transform(X, layer=1)
    # layer 2 was trained on exactly these probabilities: refitting an identical RBM on
    # them with the same seed reproduces its weights
    twin = ef.RBM(32, 16, seed=(dbn.seed_ + 1) % 2**64, epochs=5, learning_rate=0.05, batch_size=50).fit(H1)
    np.testing.assert_array_equal(twin.W, dbn.rbms_[1].W)
    assert dbn.transform(X).shape == (len(X), 16)
    S = dbn.sample(7, n_steps=20)
    assert S.shape == (7, 64) and set(np.unique(S)) <= {0.0, 1.0}


def test_labels_predict_digits():
    X, y = ef.datasets.digits(return_labels=True)
    y = np.asarray(y)
    order = np.random.default_rng(0).permutation(len(X))
    tr, te = order[:1400], order[1400:]
    dbn = ef.DBN([64, 100, 100], n_labels=10, seed=2, epochs=20, learning_rate=0.05,
                 momentum=0.5, batch_size=20).fit(X[tr], y[tr])
    p = dbn.predict_proba(X[te])
    np.testing.assert_allclose(p.sum(axis=1), 1.0)
    acc = (p.argmax(axis=1) == y[te]).mean()
    assert acc > 0.8, acc  # chance 0.1
    g = dbn.sample(4, n_steps=10, label=3)
    assert g.shape == (4, 64)


@pytest.mark.parametrize("call,exc", [
    (lambda: ef.DBN([9]), ValueError),
    (lambda: ef.DBN([9, 0]), ValueError),
    (lambda: ef.DBN([9, 4], n_labels=1), ValueError),
    (lambda: ef.DBN([9, 4], propagate="means"), ValueError),
    (lambda: ef.DBN([9, 4, 3], layers=[{}]), ValueError),
    (lambda: ef.DBN([9, 4]).fit(np.ones((3, 8))), ValueError),
    (lambda: ef.DBN([9, 4], n_labels=2).fit(np.ones((3, 9))), ValueError),
    (lambda: ef.DBN([9, 4]).fit(np.ones((3, 9)), [0, 1, 0]), ValueError),
    (lambda: ef.DBN([9, 4]).predict(np.ones((3, 9))), ValueError),
    (lambda: ef.DBN([9, 4]).sample(2, label=1), ValueError),
])
def test_bad_input(call, exc):
    with pytest.raises(exc):
        call()


def test_per_layer_parameters_and_sampled_propagation():
    X = ef.datasets.digits()[:300]
    dbn = ef.DBN([64, 20, 10], propagate="samples", seed=3,
                 layers=[dict(epochs=2, learning_rate=0.1), dict(epochs=3, method="pcd")]).fit(X)
    assert [r.epochs for r in dbn.rbms_] == [2, 3] and dbn.rbms_[1].method == "pcd"
    assert len(dbn.rbms_[1].history_) == 3
    assert dbn.transform(X).shape == (300, 10)
