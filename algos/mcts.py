"""Monte Carlo Tree Search with UCT: before each move, simulate many futures from a copy of the env and play the action
the search visited most.

Kocsis & Szepesvári (2006), "Bandit based Monte-Carlo Planning" (UCT). Each of `num_simulations` simulations starts
from a copy of the present state and does four things:
  1. selection: from the root, repeatedly take the child with the highest UCT score
     Q(s, a) + c √(ln N(s) / N(s, a)), until a node with an untried action (or the end of the episode);
  2. expansion: try one untried action, chosen at random, and add its child to the tree;
  3. rollout: from there, random actions for at most `rollout_depth` steps (in a game, `--rollout-policy decisive`
     takes a winning move when there is one and else blocks the opponent's, as Teytaud & Teytaud (2010), "On the
     huge benefit of decisive moves in Monte-Carlo tree search algorithms", propose);
  4. backup: the discounted return G = r + γ G' of the simulation, from each node down, is added to the node's sum,
     and its visit count N grows by one.
The move played is the root's most visited action; the tree is then thrown away and the next move is searched anew.
Nothing is learned: `train()` plays `eval_episodes` episodes (or games) and reports them, as the final evaluation of
the other scripts.

Q is normalized to [0, 1] by the smallest and largest Q in the tree (as MuZero does), so that one exploration constant
`c` fits envs whose returns are 1 or 500.

Two-player zero-sum games (`--env-id tictactoe`, written below) use the negamax backup: a node's value is that of the
player who moved into it, so the sign flips at each level, G = r − γ G'. The opponent is `--opponent random` or
`minimax` (a perfect player), and MCTS moves first, second, or each in turn over the games.

The model: for a gymnasium env, a copy (`copy.deepcopy`) of the env itself, without its wrappers. Each simulation steps
its own copy, with a random generator of its own, so that the search cannot foresee the real env's random outcomes.
The copies are made from a second instance of the env kept in lockstep with the played one (same reset seed, same
actions), because an env that renders (for `--capture-video`) holds pygame objects that cannot be copied. Toy-text
envs' transition table `P`, the spaces and the spec are read-only and shared by the copies. Envs that can be copied:
classic control and toy text (CartPole, Acrobot, MountainCar, FrozenLake, CliffWalking, Taxi, Blackjack were
checked). Box2D envs (LunarLander-v3) cannot: their Box2D world refuses to be copied, and mcts.py says so before it
starts. MuJoCo envs have Box actions, which the tree's branching on actions does not cover.

Spaces: Discrete actions (any observation space). For Box actions use sac.py or ppo_continuous.py.
Run: python algos/mcts.py --env-id CartPole-v1
     python algos/mcts.py --env-id tictactoe --opponent minimax --num-simulations 1000
Benchmarks: benchmarks/results/quick/README.md (CartPole-v1, tictactoe).
What was tried and measured: benchmarks/NOTES.md#mctspy
"""

# Imports
import atexit
import collections
import copy
import json
import math
import os
import random
import signal
import sys
import time
from dataclasses import asdict, dataclass
from typing import Literal, NoReturn

import gymnasium as gym
import numpy as np
import tyro
from torch.utils.tensorboard import SummaryWriter
from tqdm import tqdm


# Arguments
@dataclass
class Args:
    exp_name: str = os.path.basename(__file__)[: -len(".py")]
    """the name of this experiment (prefix of the run folder)"""
    seed: int = 1
    """seed of the search's random choices and of the envs"""
    track: bool = False
    """log to Weights & Biases, syncing TensorBoard (WANDB_MODE=offline works without an account)"""
    wandb_project_name: str = "rl-reference"
    """the W&B project name"""
    wandb_entity: str | None = None
    """the W&B entity (team)"""
    capture_video: bool = False
    """record videos of the played episodes into the run folder (gymnasium envs only)"""
    log_dir: str = "runs"
    """parent folder of the run folder"""

    # Algorithm specific arguments
    env_id: str = "CartPole-v1"
    """a gymnasium id with Discrete actions whose env can be copied, or tictactoe (defaults tuned on CartPole-v1 and
    tictactoe)"""
    eval_episodes: int = 10
    """episodes (games) to play: the run's whole budget, since nothing is trained"""
    num_simulations: int = 100
    """simulations per move"""
    exploration_c: float = 1.0
    """the UCT exploration constant c (Q is normalized to [0, 1])"""
    rollout_depth: int = 50
    """steps of a random rollout at most (a game's rollouts end with the game)"""
    gamma: float = 0.99
    """discount factor of the backup and the rollouts (in tictactoe, below 1 it prefers quicker wins)"""
    opponent: Literal["random", "minimax"] = "random"
    """tictactoe: the other player, uniformly random or perfect (minimax, random among its best moves)"""
    mcts_player: Literal["first", "second", "alternate"] = "alternate"
    """tictactoe: whether MCTS moves first, second, or first in odd games and second in even ones"""
    rollout_policy: Literal["random", "decisive"] = "random"
    """the rollouts' moves: uniformly random, or (tictactoe) a winning move if any, else a block, else random"""


# The algorithm: the models (tic-tac-toe, a copied gymnasium env), the tree, the four steps of a simulation, search
TICTACTOE = "tictactoe"


class TicTacToe:
    """Tic-tac-toe as a model for search. Cells 0..8, row by row; 0 empty, +1 the first player (X), −1 the second (O).
    `step(action)` places the mover's mark and returns (reward of the mover: 1 for a win, else 0, done)."""

    LINES = ((0, 1, 2), (3, 4, 5), (6, 7, 8), (0, 3, 6), (1, 4, 7), (2, 5, 8), (0, 4, 8), (2, 4, 6))
    two_player = True

    def __init__(self):
        self.board = [0] * 9
        self.player = 1  # whose move it is
        self.winner = 0  # +1 or −1 once a player has a line
        self.done = False

    def legal_actions(self) -> list:
        return [] if self.done else [cell for cell in range(9) if self.board[cell] == 0]

    def completes_line(self, cell: int, player: int) -> bool:
        board = self.board.copy()
        board[cell] = player
        return any(all(board[i] == player for i in line) for line in self.LINES)

    def decisive_actions(self) -> list:
        """The moves that win at once (decisive); if none, those that stop the opponent from winning at once on its
        next move (anti-decisive); if none, every legal move."""
        legal = self.legal_actions()
        for player in (self.player, -self.player):
            decisive = [cell for cell in legal if self.completes_line(cell, player)]
            if decisive:
                return decisive
        return legal

    def step(self, action: int) -> tuple:
        assert not self.done and self.board[action] == 0, f"illegal move {action} on {self.board}"
        self.board[action] = self.player
        if any(all(self.board[cell] == self.player for cell in line) for line in self.LINES):
            self.winner, self.done = self.player, True
        elif 0 not in self.board:
            self.done = True
        self.player = -self.player
        return (1.0 if self.winner else 0.0), self.done


class EnvModel:
    """A gymnasium env (unwrapped) as a model for search: `step(action) -> (reward, done)` and `legal_actions()`; a
    deepcopy of the model is a copy of the env's state."""

    two_player = False

    def __init__(self, env: gym.Env):
        self.env = env
        self.actions = list(range(int(env.action_space.n)))

    def legal_actions(self) -> list:
        return self.actions

    def step(self, action: int) -> tuple:
        _, reward, terminated, truncated, _ = self.env.step(action)
        return float(reward), terminated or truncated


# What a gymnasium env never changes while it steps: its copies share these instead of copying them (toy text's
# transition table P is most of the cost of a copy), and the random generator, which each copy replaces.
SHARED_ATTRIBUTES = ("action_space", "observation_space", "spec", "metadata", "P", "_np_random")


def copy_model(model, rng: np.random.Generator):
    """A copy of the model to simulate on. A gymnasium env's copy gets a random generator of its own (a copy of the
    real env's generator would replay the real future's random outcomes)."""
    memo = {}
    if isinstance(model, EnvModel):
        for name in SHARED_ATTRIBUTES:
            if name in vars(model.env):
                memo[id(vars(model.env)[name])] = vars(model.env)[name]
    simulator = copy.deepcopy(model, memo)
    if isinstance(simulator, EnvModel):
        simulator.env.np_random = np.random.default_rng(int(rng.integers(2**63)))
    return simulator


class Node:
    """A node of the search tree: the state reached by the actions from the root to it. `value_sum` adds up the
    returns of the simulations through it, from the view of the player who moved into it."""

    __slots__ = ("children", "untried", "visits", "value_sum")

    def __init__(self, actions):
        self.children = {}  # action -> Node
        self.untried = list(actions)  # legal actions not yet expanded
        self.visits = 0
        self.value_sum = 0.0

    def q(self) -> float:
        return self.value_sum / self.visits


class MinMax:
    """The smallest and largest Q seen in one search, to normalize Q to [0, 1]."""

    def __init__(self):
        self.low, self.high = math.inf, -math.inf

    def update(self, value: float) -> None:
        self.low, self.high = min(self.low, value), max(self.high, value)

    def normalize(self, value: float) -> float:
        return (value - self.low) / (self.high - self.low) if self.high > self.low else 0.0


def uct_score(q: float, parent_visits: int, child_visits: int, c: float) -> float:
    """UCB1 applied to trees: Q(s, a) + c √(ln N(s) / N(s, a)); an unvisited child scores +∞."""
    if child_visits == 0:
        return math.inf
    return q + c * math.sqrt(math.log(parent_visits) / child_visits)


def select_child(node: Node, c: float, bounds: MinMax) -> int:
    """The action of the child with the highest UCT score (the first one on a tie)."""
    scores = {
        action: uct_score(bounds.normalize(child.q()), node.visits, child.visits, c)
        for action, child in node.children.items()
    }
    return max(scores, key=scores.get)


def discounted_return(rewards: list, leaf_value: float, gamma: float, two_player: bool) -> list:
    """The return from each step of `rewards` onward, ending in `leaf_value`: G_t = r_t + γ G_{t+1}, or in a
    two-player game G_t = r_t − γ G_{t+1} (negamax: each G is from the view of the player who moved at t)."""
    sign = -1.0 if two_player else 1.0
    returns, value = [], leaf_value
    for reward in reversed(rewards):
        value = reward + gamma * sign * value
        returns.append(value)
    return returns[::-1]


def backup(root: Node, path: list, rewards: list, leaf_value: float, gamma: float, two_player: bool, bounds: MinMax):
    """Add the simulation's return to every node on its path (path[i] was reached by the step that paid rewards[i])."""
    root.visits += 1
    for node, value in zip(path, discounted_return(rewards, leaf_value, gamma, two_player), strict=True):
        node.visits += 1
        node.value_sum += value
        bounds.update(node.q())


def rollout(simulator, depth: int, gamma: float, policy: str, rng: np.random.Generator) -> float:
    """The return of at most `depth` steps of the rollout policy (random actions, or random among the decisive ones),
    from the view of the player to move."""
    rewards = []
    for _ in range(depth):
        actions = simulator.decisive_actions() if policy == "decisive" else simulator.legal_actions()
        reward, done = simulator.step(actions[int(rng.integers(len(actions)))])
        rewards.append(reward)
        if done:
            break
    return discounted_return(rewards, 0.0, gamma, simulator.two_player)[0] if rewards else 0.0


def simulate(root: Node, model, args: Args, rng: np.random.Generator, bounds: MinMax) -> float:
    """One simulation from the root: selection, expansion, rollout, backup. Returns the root's return."""
    simulator = copy_model(model, rng)
    node, path, rewards, done = root, [], [], False
    # selection: descend by UCT while every action of the node has been tried
    while not done and not node.untried and node.children:
        action = select_child(node, args.exploration_c, bounds)
        reward, done = simulator.step(action)
        node = node.children[action]
        path.append(node)
        rewards.append(reward)
    # expansion: one untried action, chosen at random
    if not done and node.untried:
        action = node.untried.pop(int(rng.integers(len(node.untried))))
        reward, done = simulator.step(action)
        child = Node([] if done else simulator.legal_actions())
        node.children[action] = child
        path.append(child)
        rewards.append(reward)
    # rollout from the new leaf (its value from the view of the player to move there)
    leaf_value = 0.0 if done else rollout(simulator, args.rollout_depth, args.gamma, args.rollout_policy, rng)
    backup(root, path, rewards, leaf_value, args.gamma, model.two_player, bounds)
    return discounted_return(rewards, leaf_value, args.gamma, model.two_player)[0]


def search(model, args: Args, rng: np.random.Generator) -> tuple:
    """`num_simulations` simulations from the model's present state; returns the most visited action and its Q, or in
    place of its Q the return of a simulation that was not finite (the search stops there, and the caller on it)."""
    root = Node(model.legal_actions())
    bounds = MinMax()
    for _ in range(args.num_simulations):
        value = simulate(root, model, args, rng, bounds)
        if not math.isfinite(value):
            break
    # final choice: the most visited action (ties: the higher Q)
    action = max(root.children, key=lambda a: (root.children[a].visits, root.children[a].q()))
    return action, (root.children[action].q() if math.isfinite(value) else value)


# Tic-tac-toe's opponents
def random_move(game: TicTacToe, rng: np.random.Generator) -> int:
    actions = game.legal_actions()
    return actions[int(rng.integers(len(actions)))]


NEGAMAX_CACHE = {}


def negamax(game: TicTacToe) -> float:
    """The game's value under perfect play, from the view of the player to move: +1 win, 0 draw, −1 loss."""
    key = (tuple(game.board), game.player)
    if key not in NEGAMAX_CACHE:
        if game.done:
            NEGAMAX_CACHE[key] = -1.0 if game.winner else 0.0  # a winner is always the player who just moved
        else:
            NEGAMAX_CACHE[key] = max(-negamax(after(game, action)) for action in game.legal_actions())
    return NEGAMAX_CACHE[key]


def after(game: TicTacToe, action: int) -> TicTacToe:
    child = copy.deepcopy(game)
    child.step(action)
    return child


def minimax_move(game: TicTacToe, rng: np.random.Generator) -> int:
    """A perfect move: one of those that keep the game's value, chosen at random."""
    values = {action: -negamax(after(game, action)) for action in game.legal_actions()}
    best = [action for action, value in values.items() if value == max(values.values())]
    return best[int(rng.integers(len(best)))]


OPPONENTS = {"random": random_move, "minimax": minimax_move}


def make_env(env_id: str, video_dir: str | None):
    """The played env (recorded with a `video_dir`, every episode)."""
    if video_dir:
        env = gym.make(env_id, render_mode="rgb_array")
        return gym.wrappers.RecordVideo(env, video_dir, episode_trigger=lambda episode: True)
    return gym.make(env_id)


# Playing (there is no training: the search is the whole algorithm)
def check_args(args: Args) -> None:
    """Reject bad input before anything is written."""
    check_common_args(args)
    check_positive(args, "num_simulations", "rollout_depth")
    if args.exploration_c < 0:
        fail(f"--exploration-c must not be negative, got {args.exploration_c}")
    check_unit_interval(args, "gamma")
    if args.env_id == TICTACTOE:
        if args.capture_video:
            fail("--capture-video needs an env that renders; tictactoe does not")
        return
    if args.rollout_policy == "decisive":
        fail("--rollout-policy decisive needs a game that knows its winning moves (tictactoe)")
    _, act_space = env_spaces(args.env_id)
    if not isinstance(act_space, gym.spaces.Discrete):
        fail(f"needs a Discrete action space, but {args.env_id} has {act_space}; use sac.py or ppo_continuous.py")
    env = gym.make(args.env_id)
    try:
        env.reset(seed=args.seed)
        try:  # a copy that cannot step is no model either (a Box2D env's copy has lost its world)
            simulator = copy_model(EnvModel(env.unwrapped), np.random.default_rng(0))
            simulator.step(simulator.legal_actions()[0])
        except Exception as e:
            detail = f"{type(e).__name__}: {e}" if str(e) else type(e).__name__
            fail(f"{args.env_id} cannot be copied to serve as MCTS's model ({detail})")
    finally:
        env.close()


def train(args: Args) -> dict:
    check_args(args)
    run = start_run(args)
    rng = np.random.default_rng(args.seed)
    returns, global_step = [], 0
    if args.env_id == TICTACTOE:
        # every game: MCTS against the opponent; the return is MCTS's result (+1 win, 0 draw, −1 loss)
        opponent = OPPONENTS[args.opponent]
        for game_index in range(args.eval_episodes):
            mcts_first = args.mcts_player == "first" or (args.mcts_player == "alternate" and game_index % 2 == 0)
            mcts_side, game, length = (1 if mcts_first else -1), TicTacToe(), 0
            while not game.done:
                if game.player == mcts_side:
                    # search from the present position; the model is the game itself
                    action, q = search(game, args, rng)
                    check_finite(run, global_step, return_estimate=q)
                    run.writer.add_scalar("charts/root_q", q, global_step)
                else:
                    action = opponent(game, rng)
                game.step(action)
                global_step, length = global_step + 1, length + 1
                log_progress(run, global_step)
            returns.append(float(game.winner * mcts_side))
            log_episode(run, global_step, returns[-1], length)
    else:
        # the played env, and a second instance in lockstep with it from which the model copies are made
        env, planning_env = make_env(args.env_id, run.eval_video_dir), gym.make(args.env_id)
        for episode in range(args.eval_episodes):
            obs, _ = env.reset(seed=args.seed + episode)
            planning_obs, _ = planning_env.reset(seed=args.seed + episode)
            model = EnvModel(planning_env.unwrapped)
            episode_return, length, done = 0.0, 0, False
            while not done:
                # search from the present state on copies of the env, then play the action in both instances
                action, q = search(model, args, rng)
                obs, reward, terminated, truncated, _ = env.step(action)
                planning_obs, *_ = planning_env.step(action)
                assert np.array_equal(obs, planning_obs), "the planning env fell out of step with the played one"
                check_finite(run, global_step, return_estimate=q, reward=reward)
                done, episode_return = terminated or truncated, episode_return + float(reward)
                global_step, length = global_step + 1, length + 1
                if global_step % 10 == 0:
                    run.writer.add_scalar("charts/root_q", q, global_step)
                log_progress(run, global_step)
            returns.append(episode_return)
            log_episode(run, global_step, episode_return, length)
        env.close()
        planning_env.close()
    return finish_run(run, global_step, returns)


# Run plumbing: the same block in every numpy script (tests/test_layout.py checks it); no algorithm below this line.
ALGO = os.path.basename(__file__).removesuffix(".py")


def fail(message: str, status: int = 2) -> NoReturn:
    """Stop with one line on stderr and exit status `status` (2: bad input, found before anything is written)."""
    print(f"{ALGO}.py: error: {message}", file=sys.stderr)
    raise SystemExit(status)


def check_positive(args: Args, *names: str) -> None:
    """Fail unless every named argument is positive."""
    for name in names:
        if not getattr(args, name) > 0:
            fail(f"--{name.replace('_', '-')} must be positive, got {getattr(args, name)}")


def check_unit_interval(args: Args, *names: str) -> None:
    """Fail unless every named argument lies in [0, 1]."""
    for name in names:
        if not 0.0 <= getattr(args, name) <= 1.0:
            fail(f"--{name.replace('_', '-')} must lie in [0, 1], got {getattr(args, name)}")


def env_spaces(env_id: str) -> tuple:
    """The observation and action spaces of a gymnasium env, or a one-line failure when it cannot be made."""
    try:
        env = gym.make(env_id)
    except (gym.error.Error, ModuleNotFoundError) as e:
        fail(f"cannot make env {env_id!r}: {e}")
    spaces = env.observation_space, env.action_space
    env.close()
    if isinstance(spaces[0], gym.spaces.Box) and len(spaces[0].shape) == 3:
        fail(
            f"{env_id} observes images {spaces[0].shape}; this script takes flat vectors: for images, the scripts "
            "dqn_atari, rainbow_atari, ppo_atari (Discrete actions) or planet with --from-pixels (Box actions)"
        )
    return spaces


def check_memory(nbytes: int, what: str) -> None:
    """Fail when `what` would take more memory than is available now (Linux's MemAvailable; elsewhere no check)."""
    try:
        with open("/proc/meminfo") as f:
            available = next(int(line.split()[1]) * 1024 for line in f if line.startswith("MemAvailable:"))
    except (OSError, StopIteration, ValueError):
        return
    if nbytes > available:
        fail(f"{what} needs {nbytes / 2**30:.1f} GiB, more than the {available / 2**30:.1f} GiB of memory available")


def check_common_args(args: Args) -> dict | None:
    """Check the arguments every script has: a positive budget and evaluation, and a checkpoint (if given) that this
    script saved for this env. Return the checkpoint's contents, or None. The budget is `total_episodes`, or for a
    script that learns nothing (and has no --checkpoint) `eval_episodes`."""
    budget = "total_episodes" if hasattr(args, "total_episodes") else "eval_episodes"
    checkpoint_path = getattr(args, "checkpoint", None)
    check_positive(args, *dict.fromkeys(["eval_episodes", *([budget] if checkpoint_path is None else [])]))
    if getattr(args, "eval_frequency", 0) < 0:
        fail(f"--eval-frequency must be 0 (only the final evaluation) or positive, got {args.eval_frequency}")
    if checkpoint_path is None:
        return None
    if not os.path.isfile(checkpoint_path):
        fail(f"checkpoint file not found: {checkpoint_path}")
    try:  # allow_pickle=False: loading a file never runs code from it
        with np.load(checkpoint_path, allow_pickle=False) as saved:
            checkpoint = {name: saved[name] for name in saved.files}
    except Exception as e:
        fail(f"cannot read checkpoint {checkpoint_path}: {type(e).__name__}")
    if str(checkpoint.get("algo")) != ALGO:
        fail(f"{checkpoint_path} is not a checkpoint of {ALGO}.py")
    if str(checkpoint.get("env_id")) != args.env_id:
        fail(f"{checkpoint_path} was saved for {checkpoint.get('env_id')}, not for --env-id {args.env_id}")
    return checkpoint


@dataclass
class Run:
    """What the plumbing keeps of a run: its folder, TensorBoard writer, clock and last training returns."""

    args: Args
    name: str
    dir: str
    writer: SummaryWriter
    start_time: float
    last_step_time: float
    last_print: float
    recent_returns: collections.deque
    bar: tqdm | None = None
    counts_episodes: bool = False
    episodes: int = 0
    global_step: int = 0
    eval_step: int = 0
    previous_sigint: object = None
    interrupted_at: float = 0.0

    @property
    def video_dir(self) -> str:
        return os.path.join(self.dir, "videos")

    @property
    def eval_video_dir(self) -> str | None:
        return os.path.join(self.dir, "videos", "eval") if self.args.capture_video else None


def start_run(args: Args) -> Run:
    """Make the run folder, open TensorBoard (and W&B with --track), seed python and numpy."""
    try:  # Ctrl-C while the run is set up is ignored (a handler can be set in the main thread only)
        previous_sigint = signal.signal(signal.SIGINT, signal.SIG_IGN)
    except ValueError:
        previous_sigint = None
    name, run_dir = make_run_dir(args)
    if args.track:
        import wandb

        wandb.init(
            project=args.wandb_project_name,
            entity=args.wandb_entity,
            sync_tensorboard=True,
            config=asdict(args),
            name=name,
            dir=run_dir,
            save_code=True,
        )
    writer = SummaryWriter(run_dir)
    writer.add_text(
        "hyperparameters", "|param|value|\n|-|-|\n" + "\n".join(f"|{k}|{v}|" for k, v in asdict(args).items())
    )
    random.seed(args.seed)
    np.random.seed(args.seed)
    now = time.time()
    run = Run(args, name, run_dir, writer, now, now, now, collections.deque(maxlen=10))
    budget = next(name for name in ("total_timesteps", "total_episodes", "eval_episodes") if hasattr(args, name))
    run.counts_episodes = budget != "total_timesteps"
    run.bar = tqdm(
        total=0 if getattr(args, "checkpoint", None) else getattr(args, budget),
        unit="episode" if run.counts_episodes else "step",
        disable=not sys.stdout.isatty(),  # a bar for a person at a terminal; logs and pipes stay quiet
        file=sys.stdout,
        dynamic_ncols=True,
    )
    if previous_sigint is not None:  # from here on, Ctrl-C ends the run with one line and a marked folder
        run.previous_sigint = previous_sigint
        signal.signal(signal.SIGINT, lambda *_: interrupt(run))
    return run


def log_episode(run: Run, global_step: int, episode_return: float, episode_length: int) -> None:
    """Log one finished training episode."""
    run.writer.add_scalar("charts/episodic_return", episode_return, global_step)
    run.writer.add_scalar("charts/episodic_length", episode_length, global_step)
    run.recent_returns.append(float(episode_return))
    run.episodes += 1


def check_finite(run: Run, global_step: int, **values) -> None:
    """Stop the run (exit 1) when a loss or estimate is NaN or infinite (an array: its mean); what was logged so far
    stays readable."""
    values = {name: float(np.mean(value)) for name, value in values.items()}
    if not np.isfinite(list(values.values())).all():
        close_run(run)
        listed = ", ".join(f"{name}={value}" for name, value in values.items())
        fail(f"{listed} at global step {global_step}: not finite; stopping", status=1)


def log_progress(run: Run, global_step: int, **extra: float) -> None:
    """Call after every training step: it keeps the training clock and, every 2 s, logs the SPS and moves the progress
    bar (steps or episodes of the budget, with the recent return and `extra`)."""
    now = run.last_step_time = time.time()
    run.global_step = global_step
    if now - run.last_print >= 2.0:
        run.last_print = now
        sps = int(global_step / (now - run.start_time))
        run.writer.add_scalar("charts/SPS", sps, global_step)
        recent = f"{np.mean(run.recent_returns):.1f}" if run.recent_returns else "-"
        run.bar.set_postfix(
            recent_return=recent, **{name: f"{value:.3g}" for name, value in extra.items()}, refresh=False
        )
        run.bar.update((run.episodes if run.counts_episodes else global_step) - run.bar.n)


def evaluation_due(run: Run) -> bool:
    """Call after `log_progress`: True when the run has passed a multiple of --eval-frequency (env steps, or episodes
    for an episode budget) since its last evaluation, short of the budget's end (the final evaluation is there)."""
    frequency = getattr(run.args, "eval_frequency", 0)
    if not frequency:
        return False
    done = run.episodes if run.counts_episodes else run.global_step
    budget = run.args.total_episodes if run.counts_episodes else run.args.total_timesteps
    if done >= budget or done // frequency == run.eval_step // frequency:
        return False
    run.eval_step = done
    return True


def log_evaluation(run: Run, eval_returns) -> None:
    """Log an evaluation made during training (`record_evaluation`); the training clock stops while it runs."""
    record_evaluation(run, run.global_step, eval_returns)
    now = time.time()
    run.start_time, run.last_step_time = run.start_time + now - run.last_step_time, now
    tqdm.write(f"global step {run.global_step}: eval_return_mean={np.mean(eval_returns):.1f}", file=sys.stdout)


def record_evaluation(run: Run, global_step: int, eval_returns) -> None:
    """Log each evaluation episode as eval/episodic_return at `global_step` (of runs × episodes, the first run's) and
    append a line to evaluations.jsonl: the step, the episodes trained and the returns' mean and std (what
    benchmarks/tune.py's pruner reads)."""
    for episode_return in np.atleast_2d(eval_returns)[0]:
        run.writer.add_scalar("eval/episodic_return", episode_return, global_step)
    line = {
        "global_step": global_step,
        "episodes": run.episodes,
        "return_mean": float(np.mean(eval_returns)),
        "return_std": float(np.std(eval_returns)),
    }
    with open(os.path.join(run.dir, "evaluations.jsonl"), "a") as f:
        f.write(json.dumps(line) + "\n")


def finish_run(
    run: Run, global_step: int, eval_returns, model: dict | None = None, final_train_return: float | None = None
) -> dict:
    """Save the model (with --save-model) as `{exp_name}.npz`, log the final evaluation at the last step (of runs ×
    episodes, the first run's), write summary.json atomically and return it. `final_train_return` defaults to the mean
    of the last 10 logged training returns (scripts that train many runs side by side pass all runs' mean)."""
    args, wall_time = run.args, run.last_step_time - run.start_time
    if model is not None and args.save_model:
        np.savez(os.path.join(run.dir, f"{args.exp_name}.npz"), algo=ALGO, env_id=args.env_id, **model)
    record_evaluation(run, global_step, eval_returns)
    close_run(run)
    if final_train_return is None and run.recent_returns:
        final_train_return = np.mean(run.recent_returns)
    summary = {
        "algo": ALGO,
        "env_id": args.env_id,
        "seed": args.seed,
        "total_timesteps": global_step,
        "wall_time_s": wall_time,
        "sps": global_step / wall_time if wall_time > 0 else 0.0,
        "eval_return_mean": float(np.mean(eval_returns)),
        "eval_return_std": float(np.std(eval_returns)),
        "eval_episodes": args.eval_episodes,
        "final_train_return": None if final_train_return is None else float(final_train_return),
        "args": asdict(args),
    }
    write_summary(run.dir, summary)
    print(
        f"eval_return_mean={summary['eval_return_mean']:.1f} ± {summary['eval_return_std']:.1f}; run folder {run.dir}"
    )
    if args.track:
        import wandb

        wandb.finish()
    return summary


def close_run(run: Run) -> None:
    """Close the progress bar (at the last step) and TensorBoard, and give Ctrl-C back its meaning before the run."""
    run.bar.update((run.episodes if run.counts_episodes else run.global_step) - run.bar.n)
    run.bar.close()
    run.writer.close()
    if run.previous_sigint is not None:
        signal.signal(signal.SIGINT, run.previous_sigint)


def interrupt(run: Run) -> NoReturn:
    """Ctrl-C: keep what was logged, mark the folder (interrupted.json) and stop with one line and exit status 130."""
    if run.interrupted_at and time.time() - run.interrupted_at < 5.0:
        return  # the first Ctrl-C is being handled (later ones retry, should its exit have been swallowed)
    first, run.interrupted_at = not run.interrupted_at, time.time()
    if first:
        run.previous_sigint = None  # this handler stays until the process ends ...
        atexit.register(signal.signal, signal.SIGINT, signal.SIG_IGN)  # ... and then a Ctrl-C cannot cut the exit short
        sys.unraisablehook = lambda dropped, hook=sys.unraisablehook: exit_if_dropped(dropped, hook)
        close_run(run)
        with open(os.path.join(run.dir, "interrupted.json"), "w") as f:
            json.dump({"global_step": run.global_step, "wall_time_s": time.time() - run.start_time}, f)
    if not first:
        raise SystemExit(130)
    fail(f"interrupted at global step {run.global_step}; what was logged is kept in {run.dir}", status=130)


def exit_if_dropped(dropped, hook) -> None:
    """Python prints and drops an exception raised in a weakref callback or a `__del__` (a Ctrl-C can arrive in one):
    an exit dropped there is made at once, the folder already marked."""
    if dropped.exc_type is not SystemExit:
        return hook(dropped)
    sys.stdout.flush()
    os._exit(dropped.exc_value.code)


def make_run_dir(args: Args) -> tuple:
    """Create `{log_dir}/{env_id}__{exp_name}__{seed}__{unix_time}`; should two runs start in the same second with the
    same name, the later one takes the next free second."""
    try:
        os.makedirs(args.log_dir, exist_ok=True)
        unix_time = int(time.time())
        while True:
            run_name = f"{args.env_id.replace('/', '-')}__{args.exp_name}__{args.seed}__{unix_time}"
            try:
                os.mkdir(os.path.join(args.log_dir, run_name))
                return run_name, os.path.join(args.log_dir, run_name)
            except FileExistsError:
                unix_time += 1
    except OSError as e:
        fail(f"cannot make a run folder in --log-dir {args.log_dir}: {e.strerror}")


def write_summary(run_dir: str, summary: dict) -> None:
    """Write summary.json atomically: to a temp file in the same folder, then rename."""
    tmp_path = os.path.join(run_dir, "summary.json.tmp")
    with open(tmp_path, "w") as f:
        json.dump(summary, f, indent=2)
    os.replace(tmp_path, os.path.join(run_dir, "summary.json"))


if __name__ == "__main__":
    train(tyro.cli(Args))
